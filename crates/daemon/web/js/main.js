// The page's start: connects to the API, signs in (again, with the token
// kept in this tab's sessionStorage after a reload), and shows the page
// the address names (#/mine, #/settings, #/users, #/audit).

import { Rpc } from "./rpc.js";
import { el, fill } from "./dom.js";
import { signIn } from "./signin.js";
import { myTwoFactor } from "./mine.js";
import { audit, settings, users } from "./admin.js";

/** sessionStorage key of the session token (never a cookie or localStorage). */
const TOKEN = "twofactor.token";

const PAGES = { mine: myTwoFactor, settings, users, audit };
const ADMIN_PAGES = new Set(["settings", "users", "audit"]);

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const whoName = document.getElementById("who-name");

const app = {
  rpc: null,
  me: null,
  admin: false,
  /** The shown page's handler of `collection_update`. */
  onChange: () => {},

  async signedIn(answer) {
    this.me = answer.user_info || (await this.rpc.call("auth.me"));
    this.admin = (this.me.privilege && this.me.privilege.roles || []).includes("FULL_ADMIN");
    try {
      sessionStorage.setItem(TOKEN, await this.rpc.call("auth.generate_token", [600, {}, true, false]));
    } catch {
      // Without a token a reload asks for the password again; nothing else changes.
      sessionStorage.removeItem(TOKEN);
    }
    await subscribe();
    showChrome();
    route();
  },
};

async function subscribe() {
  // The server's collections are auth.twofactor and user, "*" for both;
  // user events name every account, so only administrators listen.
  const names = app.admin ? ["*"] : [];
  for (const name of names) {
    try {
      await app.rpc.call("core.subscribe", [name]);
    } catch {
      // Live updates are a convenience; the page works without them.
    }
  }
}

function showChrome() {
  const signedIn = !!app.me;
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  document.body.classList.toggle("is-admin", signedIn && app.admin);
  for (const li of nav.querySelectorAll("li.admin")) {
    li.hidden = !app.admin;
  }
  whoName.textContent = signedIn ? app.me.pw_name : "";
}

function currentPage() {
  const name = location.hash.replace(/^#\/?/, "") || "mine";
  if (!(name in PAGES) || (ADMIN_PAGES.has(name) && !app.admin)) {
    return "mine";
  }
  return name;
}

async function route() {
  if (!app.me) {
    return;
  }
  const name = currentPage();
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === name) {
      a.setAttribute("aria-current", "page");
    } else {
      a.removeAttribute("aria-current");
    }
  }
  document.title = `${nav.querySelector(`a[data-page="${name}"]`).textContent} – Two-factor`;
  app.onChange = () => {};
  await PAGES[name](app, main);
}

function toSignIn(note = "") {
  app.me = null;
  app.admin = false;
  app.onChange = () => {};
  showChrome();
  document.title = "Sign in – Two-factor";
  signIn(app, main, note);
}

async function connect(note = "") {
  app.rpc = new Rpc();
  app.rpc.onEvent = (params) => app.onChange(params.collection, params.fields, params);
  try {
    await app.rpc.connect();
  } catch (e) {
    fill(main, el("div", { class: "card narrow" },
      el("h1", {}, "Cannot reach the server"),
      el("p", { role: "alert" }, e.message),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "primary", on: { click: () => connect() } }, "Try again"))));
    return;
  }
  app.rpc.onClose = () => connect("The connection to the server was lost; you may need to sign in again.");
  const token = sessionStorage.getItem(TOKEN);
  if (token) {
    try {
      const answer = await app.rpc.call("auth.login_ex", [{ mechanism: "TOKEN_PLAIN", token }]);
      if (answer.response_type === "SUCCESS") {
        // The token stays the same; a use keeps it alive.
        app.me = answer.user_info || (await app.rpc.call("auth.me"));
        app.admin = (app.me.privilege && app.me.privilege.roles || []).includes("FULL_ADMIN");
        await subscribe();
        showChrome();
        await route();
        return;
      }
    } catch {
      // Fall through to the password.
    }
    sessionStorage.removeItem(TOKEN);
    toSignIn(note || "Your session has ended. Sign in again.");
    return;
  }
  toSignIn(note);
}

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await app.rpc.call("auth.logout");
  } catch {
    // Signed out here whatever the server said.
  }
  sessionStorage.removeItem(TOKEN);
  toSignIn("");
  const line = document.getElementById("signin-message");
  if (line) {
    line.textContent = "You are signed out.";
  }
});

window.addEventListener("hashchange", () => route());
connect();
