// My two-factor: status, set up / renew (QR code, secret as text, a
// confirming code), recovery codes, remove.

import {
  button, confirmInPlace, copy, el, errorText, field, fill, messageLine, say,
} from "./dom.js";

/** The `secret` parameter of a provisioning URI. */
function secretOf(uri) {
  try {
    return new URL(uri).searchParams.get("secret") || "";
  } catch {
    return "";
  }
}

/** Base32 in groups of four, for reading aloud or typing. */
function grouped(secret) {
  return secret.replace(/(.{4})/g, "$1 ").trim();
}

export async function myTwoFactor(app, main) {
  const name = app.me.pw_name;
  const message = messageLine("mine-message");
  const status = el("p", { id: "mine-status" });
  const setupBox = el("div", { id: "setup" });
  const codesBox = el("div", { id: "codes" });
  const removeBox = el("div", { id: "remove-confirm" });
  const codesLeft = el("p", { id: "codes-left" });
  const setupButton = button("Set up", () => startSetup(), { id: "setup-start", class: "primary" });
  const removeButton = button("Remove", () => confirmInPlace(
    removeBox,
    "Remove two-factor authentication from your account? Your app's codes and your recovery codes stop working.",
    "Yes, remove",
    remove,
  ), { id: "remove", class: "danger" });
  const generateButton = button("Generate recovery codes", () => askGenerate(), { id: "codes-generate" });
  const codesConfirm = el("div", { id: "codes-confirm" });

  let config = null;

  fill(main,
    el("section", { class: "card", "aria-labelledby": "mine-title" },
      el("h1", { id: "mine-title", tabindex: -1 }, "My two-factor"),
      el("p", { class: "muted" }, "Signed in as ", el("strong", {}, name)),
      status,
      el("div", { class: "actions" }, setupButton, removeButton),
      removeBox,
      setupBox,
      message),
    el("section", { class: "card", "aria-labelledby": "codes-title" },
      el("h2", { id: "codes-title" }, "Recovery codes"),
      el("p", { class: "muted" },
        "Each recovery code works once where a code is asked, for when your phone is not at hand."),
      codesLeft,
      el("div", { class: "actions" }, generateButton),
      codesConfirm,
      codesBox));

  async function refresh() {
    try {
      config = await app.rpc.call("user.twofactor_config", [name]);
    } catch (e) {
      say(message, errorText(e), "error");
      return;
    }
    const on = config.secret_configured;
    status.textContent = on
      ? `Two-factor authentication is set up: ${config.otp_digits}-digit codes every ${config.interval} seconds.`
      : "Two-factor authentication is not set up for your account.";
    status.className = on ? "status on" : "status off";
    setupButton.textContent = on ? "Renew" : "Set up";
    removeButton.hidden = !on;
    generateButton.disabled = !on;
    codesLeft.textContent = on
      ? `${config.recovery_codes_left} recovery code${config.recovery_codes_left === 1 ? "" : "s"} left.`
      : "Set up two-factor authentication first.";
  }

  async function startSetup() {
    say(message, "");
    let enrolment;
    let svg;
    try {
      enrolment = await app.rpc.call("user.twofactor_enroll", [name]);
      svg = await app.rpc.call("user.provisioning_qr", [name, true]);
    } catch (e) {
      say(message, errorText(e), "error");
      return;
    }
    const secret = secretOf(enrolment.provisioning_uri);
    const setupMessage = messageLine("setup-message");
    const [codeField, code] = field("Code from the app", {
      id: "setup-code", autocomplete: "one-time-code", inputmode: "numeric", required: true,
    }, `Enter the ${enrolment.otp_digits}-digit code the app shows now.`);
    const img = el("img", {
      id: "qr", class: "qr", width: 264, height: 264,
      alt: "QR code with the new secret, for your authenticator app",
      src: `data:image/svg+xml;base64,${btoa(svg)}`,
    });
    const form = el("form", { id: "setup-form", novalidate: true },
      el("h2", {}, config && config.secret_configured ? "Renew your secret" : "Set up"),
      el("ol", { class: "steps" },
        el("li", {}, "Scan this QR code with your authenticator app (or type the secret into it)."),
        el("li", {}, "Enter the code the app shows, to confirm.")),
      el("div", { class: "qr-wrap" }, img),
      el("div", { class: "secret-row" },
        el("span", { class: "hint" }, "Secret"),
        el("code", { id: "secret", class: "secret" }, grouped(secret)),
        button("Copy secret", () => copy(secret, setupMessage, "Secret"), { id: "secret-copy" })),
      el("p", { class: "muted" },
        `Until a code confirms it, the new secret is not used${config && config.secret_configured ? " and your current one keeps working" : ""}. It expires in ${Math.round(enrolment.expires_in / 60)} minutes.`),
      codeField,
      el("div", { class: "actions" },
        el("button", { type: "submit", class: "primary", id: "setup-confirm" }, "Confirm"),
        button("Cancel", () => {
          setupBox.replaceChildren();
          setupButton.hidden = false;
          setupButton.focus();
        })),
      setupMessage);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = code.value.trim();
      if (!token) {
        say(setupMessage, "Enter the code from the app.", "error");
        code.focus();
        return;
      }
      try {
        await app.rpc.call("user.twofactor_enroll_confirm", [name, token]);
      } catch (e) {
        const text = errorText(e);
        say(setupMessage, /Invalid code/.test(text)
          ? "That code does not match the new secret; nothing changed. Check the app and enter its current code."
          : text, "error");
        code.select();
        return;
      }
      setupBox.replaceChildren();
      setupButton.hidden = false;
      await refresh();
      say(message, "Two-factor authentication is set up. Sign-ins now ask for a code.", "ok");
      setupButton.focus();
    });
    fill(setupBox, form);
    // One enrolment at a time: Set up / Renew comes back with Cancel.
    setupButton.hidden = true;
    code.focus();
  }

  async function remove() {
    try {
      await app.rpc.call("user.unset_2fa_secret", [name]);
      await refresh();
      say(message, "Two-factor authentication was removed from your account.", "ok");
      setupButton.focus();
    } catch (e) {
      say(message, errorText(e), "error");
    }
  }

  function askGenerate() {
    const left = config ? config.recovery_codes_left : 0;
    if (left > 0) {
      confirmInPlace(codesConfirm,
        `Make new recovery codes? The ${left} you have stop working.`,
        "Yes, make new codes", generate);
    } else {
      generate();
    }
  }

  async function generate() {
    let codes;
    const codesMessage = messageLine("codes-message");
    try {
      codes = await app.rpc.call("user.generate_2fa_recovery_codes", [name]);
    } catch (e) {
      fill(codesBox, codesMessage);
      say(codesMessage, errorText(e), "error");
      return;
    }
    const text = `Recovery codes for ${name} (each works once)\n\n${codes.join("\n")}\n`;
    const download = button("Download", () => {
      const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
      const a = el("a", { href: url, download: `recovery-codes-${name}.txt`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      say(codesMessage, "Downloaded as a text file.", "ok");
    }, { id: "codes-download" });
    fill(codesBox,
      el("p", {}, "Keep these somewhere safe. They are shown only now."),
      el("ol", { id: "codes-list", class: "codes" }, codes.map((c) => el("li", {}, el("code", {}, c)))),
      el("div", { class: "actions" },
        button("Copy", () => copy(codes.join("\n"), codesMessage, "Codes"), { id: "codes-copy" }),
        download),
      codesMessage);
    await refresh();
    download.focus();
  }

  app.onChange = (collection) => {
    if (collection === "user") {
      refresh();
    }
  };
  await refresh();
  main.querySelector("h1").focus();
}
