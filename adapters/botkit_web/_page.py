"""The chat page: one HTML document with its style and a small script inline.

Nothing is fetched from elsewhere (the bot may run offline). The script and the style
carry a per-response nonce, and the Content-Security-Policy lets nothing else run, so
even markup that slipped into a message could not execute. A person's messages are set
as text; a reply's HTML comes rendered (and escaped) by the server.
"""

from __future__ import annotations

import html

__all__ = ["page_html", "security_headers"]

_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: #1d2330; background: #f4f5f7;
  display: flex; flex-direction: column; height: 100vh; }
header { display: flex; align-items: baseline; gap: 1em; padding: .6em 1em;
  background: #1d2330; color: #fff; }
header h1 { font-size: 1.1em; margin: 0; }
#chat-status { font-size: .85em; opacity: .8; }
#chat-log { flex: 1; overflow-y: auto; padding: 1em; display: flex; flex-direction: column;
  gap: .6em; }
.msg { max-width: 46em; padding: .5em .8em; border-radius: .6em; overflow-wrap: anywhere; }
.msg.user { align-self: flex-end; background: #d7e7ff; white-space: pre-wrap; }
.msg.bot { align-self: flex-start; background: #fff; border: 1px solid #dde0e6; }
.msg.pending { opacity: .6; }
.msg.failed { border: 1px solid #c62828; }
.msg p { margin: .3em 0; }
.msg pre { background: #f0f1f4; padding: .5em; overflow-x: auto; }
.msg code { font-family: ui-monospace, monospace; font-size: .92em; }
.msg blockquote { margin: .3em 0; padding-left: .8em; border-left: 3px solid #c5cad3; }
#chat-typing { margin: 0 1em; color: #666; }
#chat-error { margin: 0 1em; color: #c62828; }
form { display: flex; gap: .5em; padding: .8em 1em; background: #fff;
  border-top: 1px solid #dde0e6; }
textarea { flex: 1; font: inherit; padding: .4em; resize: vertical; }
button { font: inherit; padding: 0 1.2em; }
"""

_SCRIPT = """
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const log = document.getElementById("chat-log");
  const status = document.getElementById("chat-status");
  const typing = document.getElementById("chat-typing");
  const problem = document.getElementById("chat-error");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socketUrl = scheme + location.host + form.dataset.socket;
  const pending = new Map(); // sent, not yet stored: sent again after a reconnect
  let socket = null;
  let wait = 500;
  let typingTimer = 0;

  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function say(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }
  function bubble(id, role) {
    let element = document.getElementById(id);
    if (element === null) {
      element = document.createElement("div");
      element.id = id;
      element.className = "msg " + role;
      log.appendChild(element);
    }
    return element;
  }
  function show(message) {
    const element = bubble(message.id, message.role);
    if (message.role === "bot") {
      element.innerHTML = message.html; // rendered and escaped by the server
      typing.hidden = true;
    } else {
      element.textContent = message.text; // a person's text is never read as HTML
    }
    log.scrollTop = log.scrollHeight;
    return element;
  }
  function transmit(id, text) {
    if (socket !== null && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "message", id: id, text: text }));
    }
  }
  function handle(frame) {
    if (frame.type === "history") {
      log.replaceChildren();
      frame.messages.forEach(show);
      for (const [id, text] of pending) {
        if (document.getElementById("u-" + id) !== null) {
          pending.delete(id); // stored before the connection dropped
        } else {
          show({ id: "u-" + id, role: "user", text: text }).classList.add("pending");
          transmit(id, text);
        }
      }
    } else if (frame.type === "message") {
      show(frame);
    } else if (frame.type === "accepted") {
      pending.delete(frame.id);
      const element = document.getElementById("u-" + frame.id);
      if (element !== null) element.classList.remove("pending");
    } else if (frame.type === "typing") {
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { typing.hidden = true; }, 8000);
    } else if (frame.type === "error") {
      say(frame.error);
      if (frame.id && !frame.retry) {
        pending.delete(frame.id);
        const element = document.getElementById("u-" + frame.id);
        if (element !== null) {
          element.classList.remove("pending");
          element.classList.add("failed");
          element.title = frame.error;
        }
      }
    }
  }
  function connect() {
    status.textContent = "connecting…";
    const ws = new WebSocket(socketUrl);
    socket = ws;
    ws.onopen = () => {
      wait = 500;
      status.textContent = "connected";
      say("");
    };
    ws.onmessage = (event) => {
      try {
        handle(JSON.parse(event.data));
      } catch (error) {
        console.error("web chat: a frame could not be shown", error);
      }
    };
    ws.onclose = (event) => {
      socket = null;
      status.textContent = "disconnected; reconnecting…";
      if (event.reason) say(event.reason);
      setTimeout(connect, wait);
      wait = Math.min(wait * 2, 30000);
    };
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    const id = newId();
    pending.set(id, text);
    show({ id: "u-" + id, role: "user", text: text }).classList.add("pending");
    transmit(id, text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  connect();
})();
"""


def page_html(*, title: str, socket_path: str, max_chars: int, nonce: str) -> str:
    """The page, for one response (``nonce`` lets its own script and style run)."""
    name = html.escape(title)
    socket = html.escape(socket_path, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<link rel="icon" href="data:,">
<style nonce="{nonce}">{_STYLE}</style>
</head>
<body>
<header><h1>{name}</h1><span id="chat-status" role="status">connecting…</span></header>
<main id="chat-log" aria-live="polite"></main>
<p id="chat-typing" hidden>…</p>
<p id="chat-error" role="alert" hidden></p>
<form id="chat-form" data-socket="{socket}">
<textarea id="chat-input" rows="2" maxlength="{max_chars}" aria-label="Message"
 placeholder="Write a message (Enter sends, Shift+Enter starts a new line)" autofocus></textarea>
<button type="submit">Send</button>
</form>
<script nonce="{nonce}">{_SCRIPT}</script>
</body>
</html>
"""


def security_headers(nonce: str) -> dict[str, str]:
    """What the page is served with: only its own script and style run, it is fetched
    anew each time (it is tiny), and it sends no referrer."""
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
