// Administrators' pages: Settings, Users, Audit.

import {
  button, checkbox, confirmInPlace, el, errorText, field, fill, messageLine, say,
} from "./dom.js";

/** Validation problems as one line each ("window: Should be between 0 and 10"). */
function problems(e) {
  if (e.extra && e.extra.length) {
    return e.extra.map((p) => `${String(p[0]).replace(/^auth_twofactor_update\./, "")}: ${p[1]}`).join("; ");
  }
  return errorText(e);
}

export async function settings(app, main) {
  const message = messageLine("settings-message");
  const [enabledBox, enabled] = checkbox("Ask for codes at sign-in (two-factor authentication on)", { id: "set-enabled" });
  const [sshBox, ssh] = checkbox("Ask for codes at SSH login too", { id: "set-ssh" });
  const [windowField, windowInput] = field("Window", {
    id: "set-window", type: "number", min: 0, max: 10, step: 1, inputmode: "numeric", required: true,
  }, "How many time steps before and after the current one are also accepted (0 to 10).");
  const digitsId = "set-digits";
  const digits = el("select", { id: digitsId }, [6, 7, 8].map((d) => el("option", { value: d }, `${d} digits`)));
  const digitsField = el("div", { class: "field" }, el("label", { for: digitsId }, "Root's code length"), digits);
  const [intervalField, interval] = field("Root's code interval (seconds)", {
    id: "set-interval", type: "number", min: 5, max: 3600, step: 1, inputmode: "numeric", required: true,
  }, "How long one code lives (5 to 3600). Changing this or the length means scanning again.");
  let current = null;

  const form = el("form", { id: "settings", class: "card", novalidate: true, "aria-labelledby": "settings-title" },
    el("h1", { id: "settings-title", tabindex: -1 }, "Settings"),
    el("fieldset", {}, el("legend", {}, "Everyone"), enabledBox, sshBox, windowField),
    el("fieldset", {}, el("legend", {}, "root's secret"), digitsField, intervalField),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Save")),
    message);

  function show(entry) {
    current = entry;
    enabled.checked = !!entry.enabled;
    ssh.checked = !!(entry.services && entry.services.ssh);
    windowInput.value = entry.window;
    digits.value = String(entry.otp_digits);
    interval.value = entry.interval;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = {
      enabled: enabled.checked,
      window: Number(windowInput.value),
      services: { ssh: ssh.checked },
      otp_digits: Number(digits.value),
      interval: Number(interval.value),
    };
    const change = {};
    for (const [k, v] of Object.entries(wanted)) {
      if (JSON.stringify(v) !== JSON.stringify(current[k])) {
        change[k] = v;
      }
    }
    if (Object.keys(change).length === 0) {
      say(message, "Nothing changed.");
      return;
    }
    try {
      show(await app.rpc.call("auth.twofactor.update", [change]));
      const again = "otp_digits" in change || "interval" in change
        ? " root's authenticator app must be set up again." : "";
      say(message, `Saved.${again}`, "ok");
    } catch (e) {
      say(message, problems(e), "error");
    }
  });

  app.onChange = (collection, fields) => {
    if (collection === "auth.twofactor" && fields) {
      show(fields);
      say(message, "The settings were changed in another session; showing them now.");
    }
  };
  fill(main, form);
  try {
    show(await app.rpc.call("auth.twofactor.config"));
  } catch (e) {
    say(message, errorText(e), "error");
  }
  main.querySelector("h1").focus();
}

export async function users(app, main) {
  const message = messageLine("users-message");
  const body = el("tbody", {});
  const confirmBox = el("div", { id: "users-confirm" });
  fill(main, el("section", { class: "card", "aria-labelledby": "users-title" },
    el("h1", { id: "users-title", tabindex: -1 }, "Users"),
    el("div", { class: "table-wrap" },
      el("table", { id: "users" },
        el("caption", { class: "sr-only" }, "Accounts and their two-factor state"),
        el("thead", {}, el("tr", {},
          el("th", { scope: "col" }, "User"),
          el("th", { scope: "col" }, "Name"),
          el("th", { scope: "col" }, "Two-factor"),
          el("th", { scope: "col" }, "Codes left"),
          el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Actions")))),
        body)),
    confirmBox,
    message));

  async function refresh() {
    let list;
    try {
      list = await app.rpc.call("user.query", [[], { order_by: ["username"] }]);
    } catch (e) {
      say(message, errorText(e), "error");
      return;
    }
    const rows = await Promise.all(list.map(async (u) => {
      let left = "";
      if (u.twofactor_auth_configured) {
        try {
          left = String((await app.rpc.call("user.twofactor_config", [u.username])).recovery_codes_left);
        } catch {
          left = "?";
        }
      }
      const clear = u.twofactor_auth_configured
        ? button("Clear", () => confirmInPlace(confirmBox,
          `Remove the secret and recovery codes of ${u.username}? They then sign in without a code until they set it up again.`,
          `Yes, clear ${u.username}`,
          async () => {
            try {
              await app.rpc.call("user.unset_2fa_secret", [u.username]);
              say(message, `Cleared the secret of ${u.username}.`, "ok");
              await refresh();
            } catch (e) {
              say(message, errorText(e), "error");
            }
          }), { "aria-label": `Clear the secret of ${u.username}`, "data-user": u.username })
        : null;
      return el("tr", { "data-user": u.username },
        el("th", { scope: "row" }, u.username),
        el("td", {}, u.full_name || ""),
        el("td", { class: u.twofactor_auth_configured ? "on" : "off" },
          u.twofactor_auth_configured ? "Set up" : "Not set up"),
        el("td", {}, left),
        el("td", {}, clear));
    }));
    fill(body, rows);
  }

  app.onChange = (collection) => {
    if (collection === "user") {
      refresh();
    }
  };
  await refresh();
  main.querySelector("h1").focus();
}

const PAGE = 20;

/**
 * An audit record's detail as one line a person reads, as `tfa audit query`
 * shows it: `key=value` pairs joined by ", ", lists joined by ",", nested
 * objects in braces and lists in brackets.
 */
export function readable(value) {
  if (value === null || value === undefined) {
    return "";
  }
  if (Array.isArray(value)) {
    return value.map(readableInner).join(",");
  }
  if (typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}=${readableInner(v)}`).join(", ");
  }
  return String(value);
}

function readableInner(value) {
  if (value === null) {
    return "null";
  }
  if (Array.isArray(value)) {
    return value.length ? `[${readable(value)}]` : "[]";
  }
  if (typeof value === "object") {
    return `{${readable(value)}}`;
  }
  return readable(value);
}

export async function audit(app, main) {
  const message = messageLine("audit-message");
  const [userField, user] = field("User", { id: "audit-user", autocomplete: "off" });
  const [eventField, eventInput] = field("Event", { id: "audit-event", list: "audit-events", autocomplete: "off" });
  const [outcomeField, outcome] = field("Outcome", { id: "audit-outcome", list: "audit-outcomes", autocomplete: "off" });
  const events = el("datalist", { id: "audit-events" },
    ["auth.login", "otp.check", "otp.lockout", "twofactor.update", "user.twofactor_enroll",
      "user.unset_2fa_secret", "auth.generate_token", "auth.logout"].map((v) => el("option", { value: v })));
  const outcomes = el("datalist", { id: "audit-outcomes" },
    ["success", "accepted", "wrong", "replayed", "locked_out", "wrong_password", "bad_token"].map((v) => el("option", { value: v })));
  const body = el("tbody", { role: "rowgroup" });
  const pageInfo = el("span", { id: "audit-page", "aria-live": "polite" });
  const prev = button("Newer", () => { page -= 1; draw(); }, { id: "audit-newer" });
  const next = button("Older", () => { page += 1; draw(); }, { id: "audit-older" });
  let rows = [];
  let page = 0;

  const form = el("form", { id: "audit-filter", class: "filters", novalidate: true, role: "search", "aria-label": "Filter the audit records" },
    userField, eventField, outcomeField, events, outcomes,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Filter")));

  fill(main, el("section", { class: "card wide", "aria-labelledby": "audit-title" },
    el("h1", { id: "audit-title", tabindex: -1 }, "Audit"),
    form,
    // Focusable, so that a keyboard can scroll it when it is wider than the page.
    el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Audit records" },
      // The roles are the elements' own, said again: the narrow layout
      // displays the rows as blocks, which some browsers take as leaving
      // the table (for screen readers it stays one).
      el("table", { id: "audit", role: "table" },
        el("caption", { class: "sr-only" }, "Audit records, newest first"),
        el("thead", { role: "rowgroup" }, el("tr", { role: "row" },
          ["Time", "Event", "Outcome", "User", "Origin", "Detail"].map((h) => el("th", { scope: "col", role: "columnheader" }, h)))),
        body)),
    el("div", { class: "actions pager" }, prev, pageInfo, next),
    message));

  async function load() {
    const filters = { limit: 1000 };
    if (eventInput.value.trim()) {
      filters.event = eventInput.value.trim();
    }
    if (outcome.value.trim()) {
      filters.outcome = outcome.value.trim();
    }
    try {
      const all = await app.rpc.call("audit.query", [filters]);
      const who = user.value.trim();
      rows = who ? all.filter((r) => r.user === who) : all;
      say(message, "");
    } catch (e) {
      rows = [];
      say(message, errorText(e), "error");
    }
    page = 0;
    draw();
  }

  /** A record's time as its date and its time of day (UTC), each kept on one line. */
  function when(time) {
    const [date, clock] = time.replace(/\.\d+Z$/, "Z").split("T");
    return [el("span", {}, date), " ", el("span", {}, clock || "")];
  }

  function draw() {
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    const shown = rows.slice(page * PAGE, (page + 1) * PAGE);
    // Each cell names its column (`data-label`): a narrow screen shows the
    // records one under the other, each cell with its column's name.
    const cell = (label, attrs, ...content) => el("td", { role: "cell", "data-label": label, ...attrs }, ...content);
    fill(body, shown.map((r) => el("tr", { role: "row" },
      cell("Time", {}, el("time", { datetime: r.time }, ...when(r.time))),
      cell("Event", {}, r.event),
      cell("Outcome", { class: `outcome-${r.outcome}` }, r.outcome),
      cell("User", {}, r.user || ""),
      cell("Origin", {}, r.origin || ""),
      cell("Detail", { class: "detail" }, readable(r.detail)))));
    if (shown.length === 0) {
      fill(body, el("tr", { role: "row" }, el("td", { role: "cell", colspan: 6 }, "No records.")));
    }
    pageInfo.textContent = `Page ${page + 1} of ${pages} (${rows.length} records)`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  app.onChange = () => {};
  await load();
  main.querySelector("h1").focus();
}
