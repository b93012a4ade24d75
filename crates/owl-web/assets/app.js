// owl's own glue around htmx: connection state for the visitor (and the
// browser tests), and resetting a form once its message is on the wire.
(function () {
  "use strict";

  // Reconnect quickly at first (a crashed session comes back in
  // milliseconds), then back off to at most 10 s while the node is away.
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(10000, 100 * Math.pow(2, retry)) * (0.5 + Math.random() / 2);
  };

  function setState(state) {
    var body = document.body;
    body.dataset.live = state;
    var label = document.getElementById("live-state");
    if (label) {
      label.textContent = {
        connecting: "connecting…",
        connected: "live",
        reconnecting: "connection lost — reconnecting…",
      }[state];
    }
  }

  document.addEventListener("htmx:wsConnecting", function () {
    if (document.body.dataset.live !== "reconnecting") setState("connecting");
  });
  document.addEventListener("htmx:wsOpen", function () {
    var body = document.body;
    body.dataset.connects = String(Number(body.dataset.connects || 0) + 1);
    setState("connected");
  });
  document.addEventListener("htmx:wsClose", function () {
    setState("reconnecting");
  });
  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.target.closest("form[data-reset]");
    if (form) {
      form.reset();
      var first = form.querySelector("input:not([type=hidden])");
      if (first) first.focus();
    }
  });
})();
