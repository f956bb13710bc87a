// specloom web console: keeps server-rendered pages live. No build step, no library.
//
// A live page names its event stream in <body data-live="...">. The server sends
//   replace: HTML elements, each taking the place of the element with its id
//            (or appended to the element named by its data-append-to when new);
//   output:  {"id", "text", "next", "replace"?} appended to <pre data-output=id>;
//   state:   a line for the top bar (e.g. the gateway is unreachable);
//   end / signedout: the stream is over (the session ended; the token is gone).
(function () {
  "use strict";

  function keepOpenState(oldEl, newEl) {
    // A live update must not close what the reader opened.
    if (oldEl.tagName === "DETAILS" && oldEl.open) newEl.open = true;
    oldEl.querySelectorAll("details[open][id]").forEach(function (d) {
      var twin = newEl.querySelector("#" + CSS.escape(d.id));
      if (twin) twin.open = true;
    });
    oldEl.querySelectorAll("details[open] > .step-detail").forEach(function (detail) {
      var row = detail.closest("li[id]");
      if (!row) return;
      var twin = newEl.id === row.id ? newEl : newEl.querySelector("#" + CSS.escape(row.id));
      if (twin) {
        var d = twin.querySelector("details");
        if (d) { d.open = true; loadDetail(d, true); }
      }
    });
  }

  function replace(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      var old = el.id ? document.getElementById(el.id) : null;
      if (old) {
        keepOpenState(old, el);
        old.replaceWith(el);
      } else if (el.dataset.appendTo) {
        var parent = document.getElementById(el.dataset.appendTo);
        if (parent) parent.appendChild(el);
      }
      wire(el);
    });
  }

  function output(msg) {
    var pre = document.querySelector('pre[data-output="' + CSS.escape(msg.id) + '"]');
    if (!pre) return;
    var have = parseInt(pre.dataset.next || "0", 10);
    if (msg.replace) {
      pre.textContent = msg.text;
    } else if (msg.next > have) {
      pre.textContent += msg.text;
    } else {
      return;
    }
    pre.dataset.next = String(msg.next);
    pre.scrollTop = pre.scrollHeight;
  }

  function loadDetail(details, force) {
    var box = details.querySelector(".step-detail");
    if (!box || !details.dataset.src) return;
    if (box.dataset.loaded && !force) return;
    if (box.childElementCount && !force) { box.dataset.loaded = "1"; return; }
    box.dataset.loaded = "1";
    fetch(details.dataset.src, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : Promise.reject(r.status);
    }).then(function (html) {
      box.innerHTML = html;
    }).catch(function () {
      box.dataset.loaded = "";
    });
  }

  function wire(root) {
    root.querySelectorAll("details[data-src]").forEach(function (d) {
      if (d.dataset.wired) return;
      d.dataset.wired = "1";
      d.addEventListener("toggle", function () { if (d.open) loadDetail(d, false); });
      if (d.open) loadDetail(d, false);
    });
    if (root.matches && root.matches("details[data-src]") && !root.dataset.wired) {
      wire(root.parentElement || document);
    }
  }

  function state(text) {
    var el = document.getElementById("live-state");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  function start() {
    wire(document);
    var src = document.body.dataset.live;
    if (!src || !window.EventSource) return;
    var events = new EventSource(src);
    document.body.dataset.liveOpen = "1";
    events.addEventListener("open", function () { state(""); });
    events.addEventListener("error", function () {
      if (events.readyState !== EventSource.CLOSED) state("reconnecting…");
    });
    events.addEventListener("replace", function (e) { replace(e.data); });
    events.addEventListener("output", function (e) { output(JSON.parse(e.data)); });
    events.addEventListener("state", function (e) { state(e.data); });
    events.addEventListener("end", function () {
      events.close();
      document.body.dataset.liveOpen = "";
    });
    events.addEventListener("signedout", function () {
      events.close();
      window.location.assign("/signin?next=" + encodeURIComponent(location.pathname));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
