// Building the page from data as text only: elements are made with
// createElement, strings become text nodes, attributes are set one by one.
// Nothing here parses HTML, so a user name like <img onerror=…> shows as
// the characters it is.

let ids = 0;

/** A unique id for label/field pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * el("p", {class: "x", "aria-live": "polite"}, "text", child, …)
 * Attribute values and children are never interpreted as HTML. Event
 * handlers are given as `on: {click: fn}`.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === "on") {
      for (const [type, fn] of Object.entries(value)) {
        node.addEventListener(type, fn);
      }
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/**
 * A message line whose space is kept whether or not it shows a message
 * (no layout shift). `kind`: "error", "ok" or "" (neutral).
 */
export function messageLine(id) {
  return el("p", { id, class: "message", role: "status", "aria-live": "polite" });
}

export function say(line, text, kind = "") {
  line.textContent = text || "";
  line.className = `message ${kind}`.trim();
}

/** A labelled input: returns [wrapper, input]. */
export function field(label, attrs = {}, hint = "") {
  const id = attrs.id || uid("f");
  const hintId = hint ? `${id}-hint` : null;
  const input = el("input", { ...attrs, id, "aria-describedby": hintId });
  const wrap = el(
    "div",
    { class: "field" },
    el("label", { for: id }, label),
    hint ? el("span", { id: hintId, class: "hint" }, hint) : null,
    input,
  );
  return [wrap, input];
}

/** A labelled checkbox: returns [wrapper, input]. */
export function checkbox(label, attrs = {}) {
  const id = attrs.id || uid("c");
  const input = el("input", { ...attrs, id, type: "checkbox" });
  return [el("div", { class: "check" }, input, el("label", { for: id }, label)), input];
}

export function button(label, onClick, attrs = {}) {
  return el("button", { type: "button", ...attrs, on: { click: onClick } }, label);
}

/**
 * Asks in place before something that cannot be undone: shows `question`
 * with a confirming and a cancelling button inside `box`, focuses the
 * cancel button, and runs `action` only on the confirming one.
 */
export function confirmInPlace(box, question, yes, action) {
  const cancel = button("Cancel", () => {
    box.replaceChildren();
  });
  const ok = button(yes, async () => {
    box.replaceChildren();
    await action();
  }, { class: "danger" });
  fill(box, el("div", { class: "confirm", role: "group", "aria-label": question },
    el("p", {}, question), el("div", { class: "actions" }, ok, cancel)));
  cancel.focus();
}

/** The message of an error for the user. */
export function errorText(e) {
  if (e && e.message) {
    return e.message;
  }
  return String(e);
}

/** Copies text; says so in `line`. */
export async function copy(text, line, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(line, `${what} copied.`, "ok");
  } catch {
    say(line, `Copying is not allowed here; select the ${what.toLowerCase()} and copy it.`, "error");
  }
}
