// Amal chat page: plain JavaScript, no build step, no third party. It talks to the engine's
// own API (/v1/...) with the session's bearer token and follows a conversation's live stream
// (Server-Sent Events read through fetch, since EventSource cannot send the token).
"use strict";

(function () {
  const body = document.body;
  const lang = body.dataset.lang;
  const T = JSON.parse(document.getElementById("amal-strings").textContent);
  const TOKEN_KEY = "amal.session";
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    conversation: null,
    stream: null,
    seen: new Set(),
    lastCursor: null,
    profile: null,
  };

  /** A string of the page's language with `{name}` placeholders filled. */
  function t(key, values) {
    let s = T[key] || key;
    for (const [k, v] of Object.entries(values || {})) s = s.split("{" + k + "}").join(v);
    return s;
  }

  function status(text) {
    $("status").textContent = text || "";
  }

  function show(ids) {
    for (const id of ["welcome", "signin", "chat", "history", "account"]) {
      $(id).hidden = !ids.includes(id);
    }
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || "HTTP " + status);
      this.status = status;
      this.problem = problem || {};
    }
  }

  /** Calls the API; JSON in and out; throws ApiError with the problem document. */
  async function api(method, path, payload) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      credentials: "omit",
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function explain(error) {
    if (error instanceof ApiError) {
      if (error.status === 401) return sessionEnded();
      if (error.status === 429) return status(t("rate_limited"));
      if (error.status === 403 && error.problem.type === "urn:amal:problem:consent-required") {
        return showConsent();
      }
    }
    status(t("error"));
  }

  // -------------------------------------------------------------------------------------
  // Consent and sign-in

  let afterConsent = null;

  function showConsent(then) {
    afterConsent = then || afterConsent || (() => showSignIn());
    show(["welcome"]);
    $("consent").focus();
  }

  $("consent-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!$("consent").checked) {
      $("consent-error").hidden = false;
      $("consent").setAttribute("aria-invalid", "true");
      $("consent").focus();
      return;
    }
    $("consent-error").hidden = true;
    $("consent").removeAttribute("aria-invalid");
    const next = afterConsent;
    afterConsent = null;
    try {
      await next();
    } catch (error) {
      explain(error);
    }
  });

  function showSignIn() {
    show(["signin"]);
    $("anonymous-box").hidden = body.dataset.anonymous !== "true";
    $("signin-title").focus();
  }

  $("email-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = $("email").value.trim();
    if (!email) return;
    try {
      await api("POST", "/v1/auth/magic-link", { email });
      $("email-sent").hidden = false;
      status(t("email_sent"));
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) status(error.message);
      else explain(error);
    }
  });

  $("anonymous").addEventListener("click", async () => {
    try {
      const session = await api("POST", "/v1/auth/anonymous", { consent_data_storage: true });
      signedIn(session.token);
    } catch (error) {
      explain(error);
    }
  });

  async function verify(token) {
    status(t("signing_in"));
    try {
      const session = await api("POST", "/v1/auth/verify", {
        token,
        consent_data_storage: true,
      });
      status("");
      signedIn(session.token);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        status(t("link_invalid"));
        showSignIn();
      } else {
        explain(error);
      }
    }
  }

  function signedIn(token) {
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    enterChat();
  }

  function signedOutLocally() {
    closeStream();
    state.token = null;
    state.conversation = null;
    state.profile = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("messages").replaceChildren();
    $("safety").hidden = true;
  }

  function sessionEnded() {
    signedOutLocally();
    status(t("session_ended"));
    showConsent(() => showSignIn());
  }

  // -------------------------------------------------------------------------------------
  // The conversation

  async function enterChat() {
    let profile;
    try {
      profile = await api("GET", "/v1/me");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return sessionEnded();
      return explain(error);
    }
    state.profile = profile;
    if (!profile.consent_data_storage) {
      return showConsent(async () => {
        await api("POST", "/v1/me/consent", { consent_data_storage: true });
        await enterChat();
      });
    }
    show(["chat", "history", "account"]);
    $("notify-box").hidden = profile.is_anonymous;
    // The page's language becomes the person's: later e-mails and replies follow it.
    api("PATCH", "/v1/me/preferences", { language: lang })
      .then((p) => { $("email-notifications").checked = !!p.email_notifications; })
      .catch(() => {});
    const list = await loadHistory();
    const open = list.find((c) => c.status === "active" || c.status === "escalated");
    if (open) await openConversation(open.id);
    $("message").focus();
  }

  async function loadHistory() {
    let list = [];
    try {
      list = await api("GET", "/v1/conversations?limit=50");
    } catch (error) {
      explain(error);
    }
    const ul = $("conversations");
    ul.replaceChildren();
    $("history-empty").hidden = list.length > 0;
    const dateFormat = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    for (const c of list) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.id = c.id;
      b.textContent = c.title || t("conversation_from", { date: dateFormat.format(new Date(c.created_at)) });
      b.setAttribute("dir", "auto");
      if (state.conversation === c.id) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => openConversation(c.id).then(() => $("message").focus()));
      li.append(b);
      ul.append(li);
    }
    return list;
  }

  async function openConversation(id) {
    closeStream();
    state.conversation = id;
    state.seen = new Set();
    state.lastCursor = null;
    $("messages").replaceChildren();
    $("safety").hidden = true;
    for (const b of $("conversations").querySelectorAll("button")) {
      if (b.dataset.id === id) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    try {
      const page = await api("GET", "/v1/conversations/" + id + "?limit=50");
      for (const m of page.messages) render(m);
    } catch (error) {
      return explain(error);
    }
    openStream(id);
  }

  $("new-conversation").addEventListener("click", () => {
    closeStream();
    state.conversation = null;
    $("messages").replaceChildren();
    $("safety").hidden = true;
    for (const b of $("conversations").querySelectorAll("button")) b.removeAttribute("aria-current");
    $("message").focus();
  });

  /** Shows a message once, whichever of the turn's answer or the live stream brings it first. */
  function render(m) {
    if (m.cursor) state.lastCursor = m.cursor;
    if (state.seen.has(m.id)) return;
    state.seen.add(m.id);
    const li = document.createElement("li");
    li.className = "msg msg-" + m.role;
    li.dataset.id = m.id;
    li.dataset.role = m.role;
    const who = document.createElement("p");
    who.className = "who";
    who.textContent = t("role_" + m.role);
    const text = document.createElement("p");
    text.className = "text";
    text.setAttribute("dir", "auto");
    text.textContent = m.content;
    li.append(who, text);
    if (Array.isArray(m.citations) && m.citations.length) {
      const sources = document.createElement("div");
      sources.className = "sources";
      const h = document.createElement("p");
      h.textContent = t("sources");
      const ul = document.createElement("ul");
      for (const c of m.citations) {
        const item = document.createElement("li");
        item.setAttribute("dir", "auto");
        item.textContent = [c.title, c.source].filter(Boolean).join(" — ");
        ul.append(item);
      }
      sources.append(h, ul);
      li.append(sources);
    }
    if (m.ticket_number) {
      const ticket = document.createElement("p");
      ticket.className = "ticket";
      ticket.textContent = t("ticket", { ticket: m.ticket_number });
      li.append(ticket);
    }
    $("messages").append(li);
    li.scrollIntoView({ block: "nearest" });
  }

  function showSafety(text) {
    $("safety-text").textContent = text;
    $("safety").hidden = false;
    $("safety").focus();
  }

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function ensureConversation() {
    if (state.conversation) return state.conversation;
    const c = await api("POST", "/v1/conversations", { language: lang });
    state.conversation = c.id;
    state.seen = new Set();
    openStream(c.id);
    loadHistory();
    return c.id;
  }

  async function send(content) {
    const key = newKey();
    $("send").disabled = true;
    $("human").disabled = true;
    $("typing").hidden = false;
    try {
      let id = await ensureConversation();
      let turn;
      try {
        turn = await api("POST", "/v1/conversations/" + id + "/messages", {
          content,
          client_message_id: key,
        });
      } catch (error) {
        // A closed or archived conversation: the message starts a new one.
        if (!(error instanceof ApiError && error.status === 409 &&
              error.problem.type === "urn:amal:problem:conversation-not-active")) throw error;
        state.conversation = null;
        closeStream();
        $("messages").replaceChildren();
        id = await ensureConversation();
        turn = await api("POST", "/v1/conversations/" + id + "/messages", {
          content,
          client_message_id: key,
        });
      }
      render(turn.user_message);
      render(turn.reply);
      if (turn.safety) showSafety(turn.reply.content);
      $("message").value = "";
      status("");
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 403 && error.problem.detail &&
          error.problem.type === "urn:amal:problem:consent-required") {
        // Not stored, but a message in crisis still gets the safety message.
        const parts = error.problem.detail.split("\n\n");
        if (parts.length > 1) showSafety(parts.slice(1).join("\n\n"));
      }
      explain(error);
      return false;
    } finally {
      $("send").disabled = false;
      $("human").disabled = false;
      $("typing").hidden = true;
    }
  }

  $("compose").addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = $("message").value.trim();
    if (!content) {
      $("message").focus();
      return;
    }
    await send(content);
    focusComposer();
  });

  // Enter sends, Shift+Enter starts a new line.
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("compose").requestSubmit();
    }
  });

  $("human").addEventListener("click", async () => {
    await send(t("human_message"));
    focusComposer();
  });

  /** Back to the message box, unless the safety message has just taken the focus. */
  function focusComposer() {
    if (document.activeElement !== $("safety")) $("message").focus();
  }

  // -------------------------------------------------------------------------------------
  // The live stream

  function closeStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function openStream(id) {
    closeStream();
    const controller = new AbortController();
    state.stream = controller;
    let delay = 1000;
    const run = async () => {
      while (!controller.signal.aborted && state.conversation === id) {
        try {
          const headers = { Accept: "text/event-stream", Authorization: "Bearer " + state.token };
          if (state.lastCursor) headers["Last-Event-ID"] = state.lastCursor;
          const response = await fetch("/v1/conversations/" + id + "/events", {
            headers,
            signal: controller.signal,
            credentials: "omit",
            cache: "no-store",
          });
          if (response.status === 401) return sessionEnded();
          if (response.status === 404) return;
          if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
          delay = 1000;
          if ($("status").textContent === t("reconnecting")) status("");
          const ended = await readEvents(response.body, id);
          if (ended) return;
        } catch (error) {
          if (controller.signal.aborted) return;
        }
        status(t("reconnecting"));
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30000);
      }
    };
    run();
  }

  /** Reads one response's events; true when the server ended the session. */
  async function readEvents(stream, id) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
        }
        if (!data) continue;
        let payload;
        try { payload = JSON.parse(data); } catch (_) { continue; }
        if (state.conversation !== id) return true;
        if (event === "message") {
          render(payload);
          if (payload.role !== "user") $("typing").hidden = true;
        } else if (event === "state") {
          $("typing").hidden = payload.state !== "processing";
        } else if (event === "end") {
          sessionEnded();
          return true;
        }
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // The person's data

  $("email-notifications").addEventListener("change", async (e) => {
    try {
      await api("PATCH", "/v1/me/preferences", { email_notifications: e.target.checked });
      status(t("saved"));
    } catch (error) {
      e.target.checked = !e.target.checked;
      explain(error);
    }
  });

  $("export").addEventListener("click", async () => {
    try {
      const doc = await api("GET", "/v1/me/export");
      const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "amal-export.json";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (error) {
      explain(error);
    }
  });

  $("sign-out").addEventListener("click", async () => {
    try {
      await api("POST", "/v1/auth/sign-out");
    } catch (_) {
      // Signed out here whatever the server says.
    }
    signedOutLocally();
    status("");
    showConsent(() => showSignIn());
  });

  $("delete").addEventListener("click", () => {
    $("delete-confirm").hidden = false;
    $("delete-cancel").focus();
  });
  $("delete-cancel").addEventListener("click", () => {
    $("delete-confirm").hidden = true;
    $("delete").focus();
  });
  $("delete-yes").addEventListener("click", async () => {
    try {
      await api("DELETE", "/v1/me");
      $("delete-confirm").hidden = true;
      signedOutLocally();
      $("consent").checked = false;
      status(t("deleted"));
      showConsent(() => showSignIn());
    } catch (error) {
      explain(error);
    }
  });

  // -------------------------------------------------------------------------------------
  // Start

  const params = new URLSearchParams(location.search);
  const linkToken = params.get("token");
  if (linkToken) {
    // The token leaves the address bar (and the history) before anything else happens.
    history.replaceState(null, "", location.pathname + "?lang=" + lang);
    signedOutLocally();
    showConsent(() => verify(linkToken));
  } else if (state.token) {
    enterChat();
  } else {
    showConsent(() => showSignIn());
  }
})();
