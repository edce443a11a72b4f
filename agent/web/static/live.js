/* wipe-agent bay wall: live tiles over server-sent events (the page works without this file). */
(function () {
  "use strict";
  var wall = document.getElementById("wall");
  if (!wall || !window.EventSource) { return; }
  var banner = document.getElementById("banner");
  var message = document.getElementById("message");
  var notices = document.getElementById("notices");
  var source = null;
  var retry = 1000;

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function replaceTile(name, html) {
    var old = document.getElementById("tile-" + name);
    if (!old) { return false; }
    // keep the keyboard where it was and what was chosen: a tile is redrawn several times a second
    var active = document.activeElement;
    var focusKey = active && old.contains(active) ? active.getAttribute("data-focus") : null;
    var chosen = {};
    old.querySelectorAll("select[data-focus]").forEach(function (select) {
      chosen[select.getAttribute("data-focus")] = select.value;
    });
    var holder = document.createElement("div");
    holder.innerHTML = html;  // rendered and escaped by the server
    var fresh = holder.firstElementChild;
    if (!fresh) { return false; }
    fresh.querySelectorAll("select[data-focus]").forEach(function (select) {
      var value = chosen[select.getAttribute("data-focus")];
      if (value !== undefined) { select.value = value; }
    });
    old.replaceWith(fresh);
    if (focusKey) {
      var again = fresh.querySelector('[data-focus="' + focusKey + '"]');
      if (again) { again.focus(); }
    }
    return true;
  }

  function apply(data) {
    if (data.reload) { window.location.reload(); return; }
    Object.keys(data.tiles || {}).forEach(function (name) {
      if (!replaceTile(name, data.tiles[name])) { window.location.reload(); }
    });
    if (Object.prototype.hasOwnProperty.call(data, "notices")) { notices.innerHTML = data.notices; }
    if (Object.prototype.hasOwnProperty.call(data, "banner")) { show(banner, data.banner); }
    wall.setAttribute("data-connected", data.connected ? "yes" : "no");
    wall.setAttribute("data-version", String(data.version));
    wall.setAttribute("data-updated", String(Date.now()));
  }

  function connect() {
    source = new EventSource(wall.getAttribute("data-events"));
    source.addEventListener("wall", function (event) {
      retry = 1000;
      apply(JSON.parse(event.data));
    });
    source.addEventListener("open", function () {
      wall.setAttribute("data-live", "open");
    });
    source.addEventListener("error", function () {
      wall.setAttribute("data-live", "lost");
      if (source.readyState === EventSource.CLOSED) {
        // refused (too many views, signed out): EventSource gives up; we try again, ever less often
        show(banner, "live updates lost: reconnecting (reload the page if this stays)");
        window.setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      } else {
        show(banner, "web console restarting\u2026 reconnecting");
      }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("bay-action")) { return; }
    event.preventDefault();
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (button) { button.disabled = true; });
    show(message, "working\u2026");
    fetch(form.action, {
      method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" },
      body: new URLSearchParams(new FormData(form))
    }).then(function (response) {
      return response.json().then(function (body) {
        show(message, body.message || (body.error && body.error.message) || ("HTTP " + response.status));
        window.setTimeout(function () { show(message, ""); }, 10000);
      });
    }).catch(function () {
      show(message, "the console did not answer: try again");
    }).then(function () {
      buttons.forEach(function (button) { button.disabled = false; });
    });
  });

  connect();
}());
