// Sign in: user name and password, then the code when the server answers
// OTP_REQUIRED (a recovery code works in the same field).

import { button, el, errorText, field, fill, messageLine, say } from "./dom.js";

/** Words for the refusals the server gives while signing in. */
function refusal(e) {
  const text = errorText(e);
  if (/Rate Limit Exceeded/i.test(text)) {
    return "Too many sign-in attempts from this address. Wait a minute, then try again.";
  }
  const locked = /try again in (\d+) seconds?/i.exec(text);
  if (locked) {
    return `Too many wrong codes: locked out. Try again in ${locked[1]} seconds.`;
  }
  return text;
}

/**
 * Draws the sign-in form in `main`; `done(loginResponse)` is called once
 * the server answers SUCCESS. `note` is shown first (why we are here).
 */
export function signIn(app, main, note = "") {
  const message = messageLine("signin-message");
  const [userField, user] = field("User name", {
    name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false",
  });
  const [passField, pass] = field("Password", {
    name: "password", type: "password", autocomplete: "current-password", required: true,
  });
  const [codeField, code] = field(
    "Code",
    {
      name: "code", autocomplete: "one-time-code", inputmode: "numeric",
      required: true, autocapitalize: "none", spellcheck: "false",
    },
    "The code from your authenticator app, or one of your recovery codes.",
  );
  const submit = el("button", { type: "submit", class: "primary" }, "Sign in");
  const verify = el("button", { type: "submit", class: "primary" }, "Verify");
  const restart = button("Start over", () => passwordStep(""));
  const passwordPart = el("div", {}, userField, passField, el("div", { class: "actions" }, submit));
  const codePart = el("div", { hidden: true }, el("p", { id: "code-for" }), codeField,
    el("div", { class: "actions" }, verify, restart));
  let step = "password";
  let busy = false;

  const form = el("form", { id: "signin", class: "card narrow", novalidate: true, "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, "Sign in"), passwordPart, codePart, message);

  function passwordStep(text, kind = "error") {
    step = "password";
    passwordPart.hidden = false;
    codePart.hidden = true;
    code.value = "";
    pass.value = "";
    say(message, text, kind);
    (user.value ? pass : user).focus();
  }

  function codeStep(name, text = "", kind = "") {
    step = "code";
    passwordPart.hidden = true;
    codePart.hidden = false;
    fill(codePart.querySelector("#code-for"), `Enter the code for ${name}.`);
    code.value = "";
    say(message, text, kind);
    code.focus();
  }

  async function answer(r) {
    switch (r && r.response_type) {
      case "SUCCESS":
        say(message, "");
        await app.signedIn(r);
        return;
      case "OTP_REQUIRED":
        if (step === "code") {
          codeStep(r.username, "Wrong code. Try the current code from your app.", "error");
        } else {
          codeStep(r.username);
        }
        return;
      case "AUTH_ERR":
        if (step === "code") {
          passwordStep("Too many wrong codes for this sign-in. Enter your password again.");
        } else {
          passwordStep("Wrong user name or password.");
        }
        return;
      default:
        passwordStep(`Unexpected answer from the server: ${String(r && r.response_type)}`);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) {
      return;
    }
    busy = true;
    submit.disabled = verify.disabled = true;
    try {
      if (step === "password") {
        if (!user.value.trim() || !pass.value) {
          say(message, "Enter your user name and password.", "error");
          (user.value.trim() ? pass : user).focus();
          return;
        }
        say(message, "Signing in…");
        await answer(await app.rpc.call("auth.login_ex", [{
          mechanism: "PASSWORD_PLAIN", username: user.value.trim(), password: pass.value,
        }]));
      } else {
        const token = code.value.trim();
        if (!token) {
          say(message, "Enter the code.", "error");
          code.focus();
          return;
        }
        say(message, "Checking the code…");
        await answer(await app.rpc.call("auth.login_ex_continue", [{
          mechanism: "OTP_TOKEN", otp_token: token,
        }]));
      }
    } catch (e) {
      const text = refusal(e);
      if (step === "code" && /locked out/.test(text)) {
        passwordStep(text);
      } else {
        say(message, text, "error");
        (step === "code" ? code : pass).focus();
      }
    } finally {
      busy = false;
      submit.disabled = verify.disabled = false;
    }
  });

  fill(main, form);
  say(message, note, note ? "error" : "");
  user.focus();
}
