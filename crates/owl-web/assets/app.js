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
  // The load page's charts: drawn here with uPlot, fed by the data element
  // the page's session sends (the whole history first, then new points).
  var HISTORY = 600;
  var charts = null;
  var lastSeq = null;
  var series = { t: [], jobs: [], util: [], cluster: [] };

  function short(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(n % 1e6 ? 1 : 0) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(n % 1e3 ? 1 : 0) + "k";
    return String(n);
  }
  function clock(t) {
    var d = new Date(t * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map(function (n) { return (n < 10 ? "0" : "") + n; }).join(":");
  }
  // Tall enough to read from the back of a room on a wide screen.
  function height(el) { return el.clientWidth > 600 ? 320 : 200; }
  function chart(el, lines, range) {
    var opts = {
      width: Math.max(240, el.clientWidth),
      height: height(el),
      legend: { show: false },
      scales: { x: { time: true }, y: range ? { range: range } : {} },
      // Times as 16:31:05, never a locale's 12/2/26 4:31pm.
      axes: [{ values: function (u, ticks) { return ticks.map(clock); } },
        { size: 56, values: function (u, ticks) { return ticks.map(short); } }],
      series: [{}].concat(lines),
    };
    return new uPlot(opts, [[]].concat(lines.map(function () { return []; })), el);
  }

  function makeCharts() {
    var jobs = document.getElementById("chart-jobs");
    var util = document.getElementById("chart-util");
    if (!jobs || !util || typeof uPlot === "undefined") return null;
    // In a cluster the jobs chart adds the whole cluster's rate, dashed.
    var clustered = jobs.dataset.cluster === "1";
    var jobLines = [{ label: "jobs/s", stroke: "#2d5bd7", width: 2 }];
    if (clustered) jobLines.push({ label: "cluster jobs/s", stroke: "#2d5bd7", width: 1.5, dash: [6, 4] });
    var made = {
      clustered: clustered,
      // From zero: a normal jitter of a few percent must not look like a crash.
      jobs: chart(jobs, jobLines, function (u, min, max) { return [0, Math.max(10, max * 1.1)]; }),
      util: chart(util, [{ label: "utilization %", stroke: "#b3261e", width: 2 }], [0, 100]),
    };
    window.addEventListener("resize", function () {
      made.jobs.setSize({ width: Math.max(240, jobs.clientWidth), height: height(jobs) });
      made.util.setSize({ width: Math.max(240, util.clientWidth), height: height(util) });
    });
    return made;
  }

  function takeLoadData() {
    var el = document.getElementById("load-data");
    if (!el || !el.dataset.json || el.dataset.seq === lastSeq) return;
    lastSeq = el.dataset.seq;
    charts = charts || makeCharts();
    if (!charts) return;
    var rows = JSON.parse(el.dataset.json);
    if (el.dataset.kind === "history") series = { t: [], jobs: [], util: [], cluster: [] };
    rows.forEach(function (r) {
      series.t.push(r[0]);
      series.jobs.push(r[1]);
      series.util.push(r[2]);
      series.cluster.push(r.length > 3 ? r[3] : null);
    });
    var extra = series.t.length - HISTORY;
    if (extra > 0) {
      series.t.splice(0, extra);
      series.jobs.splice(0, extra);
      series.util.splice(0, extra);
      series.cluster.splice(0, extra);
    }
    charts.jobs.setData(charts.clustered
      ? [series.t, series.jobs, series.cluster]
      : [series.t, series.jobs]);
    charts.util.setData([series.t, series.util]);
    document.body.dataset.points = String(series.t.length);
    // The latest values beside each chart's title, as a legend.
    var last = series.t.length - 1;
    function show(id, value, unit) {
      var span = document.getElementById(id);
      if (span && last >= 0 && value !== null && value !== undefined) {
        span.textContent = Math.round(value).toLocaleString("en-US") + unit;
      }
    }
    show("now-jobs", series.jobs[last], " jobs/s");
    show("now-cluster", series.cluster[last], " in the cluster");
    show("now-util", series.util[last], " %");
  }
  document.addEventListener("htmx:wsAfterMessage", takeLoadData);

  // The board's form: the session says when a post was committed (the
  // form's data-cleared goes up); only then is the text emptied, so a
  // failed post keeps what the visitor typed.
  var cleared = null;
  document.addEventListener("htmx:wsAfterMessage", function () {
    var form = document.getElementById("board-form");
    if (!form) return;
    if (cleared !== null && form.dataset.cleared !== cleared) {
      var text = document.getElementById("post-text");
      if (text) text.value = "";
    }
    cleared = form.dataset.cleared;
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.target.closest("form[data-reset]");
    if (form) {
      form.reset();
      var first = form.querySelector("input:not([type=hidden])");
      if (first) first.focus();
    }
  });

  // Sortable column headers: a tap picks the order in the filter form's
  // menu, which sends it like any other change of the form.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-sort]");
    var select = document.getElementById("sort");
    if (!button || !select) return;
    select.value = button.dataset.sort;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // Forms that cannot be taken back (Kill) ask first.
  document.addEventListener("submit", function (event) {
    var ask = event.target.dataset && event.target.dataset.confirm;
    if (ask && !window.confirm(ask)) event.preventDefault();
  });

  // The system page's charts: the points its session sends, drawn the
  // same way, five minutes kept.
  var SYSTEM_HISTORY = 300;
  var systemCharts = null;
  var systemSeq = null;
  var systemRows = [];
  function fromZero(u, min, max) { return [0, Math.max(1, max * 1.1)]; }
  function makeSystemCharts() {
    var ids = ["chart-mem", "chart-util-sys", "chart-procs", "chart-rates", "chart-queues", "chart-host"];
    var els = ids.map(function (id) { return document.getElementById(id); });
    if (els.some(function (el) { return !el; }) || typeof uPlot === "undefined") return null;
    var made = [
      chart(els[0], [{ label: "resident MB", stroke: "#2d5bd7", width: 2 },
        { label: "guests MB", stroke: "#8a5a00", width: 1.5 },
        { label: "board MB", stroke: "#1d7a46", width: 1.5, dash: [6, 4] }], fromZero),
      chart(els[1], [{ label: "schedulers %", stroke: "#b3261e", width: 2 },
        { label: "guest threads %", stroke: "#8a5a00", width: 1.5, dash: [6, 4] }], [0, 100]),
      chart(els[2], [{ label: "processes", stroke: "#1d7a46", width: 2 }], fromZero),
      chart(els[3], [{ label: "spawned/s", stroke: "#2d5bd7", width: 2 },
        { label: "crashed/s", stroke: "#b3261e", width: 2 }], fromZero),
      chart(els[4], [{ label: "waiting", stroke: "#2d5bd7", width: 2 },
        { label: "background", stroke: "#8a5a00", width: 1.5, dash: [6, 4] }], fromZero),
      chart(els[5], [{ label: "CPU busy %", stroke: "#b3261e", width: 2 },
        { label: "memory used %", stroke: "#2d5bd7", width: 1.5 }], [0, 100]),
    ];
    window.addEventListener("resize", function () {
      made.forEach(function (c, i) {
        c.setSize({ width: Math.max(240, els[i].clientWidth), height: height(els[i]) });
      });
    });
    return made;
  }
  // A point's columns (see pages/system.rs): 0 time, 1–3 memory MB
  // (resident, guests, board), 4–5 utilization %, 6 processes, 7–8
  // spawned and crashed per second, 9–10 run queues, 11–12 the machine's
  // CPU and memory %.
  function takeSystemData() {
    var el = document.getElementById("system-data");
    if (!el || !el.dataset.json || el.dataset.seq === systemSeq) return;
    systemSeq = el.dataset.seq;
    systemCharts = systemCharts || makeSystemCharts();
    if (!systemCharts) return;
    var rows = JSON.parse(el.dataset.json);
    if (el.dataset.kind === "history") systemRows = [];
    systemRows = systemRows.concat(rows).slice(-SYSTEM_HISTORY);
    function column(i) { return systemRows.map(function (r) { return r[i]; }); }
    var t = column(0);
    systemCharts[0].setData([t, column(1), column(2), column(3)]);
    systemCharts[1].setData([t, column(4), column(5)]);
    systemCharts[2].setData([t, column(6)]);
    systemCharts[3].setData([t, column(7), column(8)]);
    systemCharts[4].setData([t, column(9), column(10)]);
    systemCharts[5].setData([t, column(11), column(12)]);
    document.body.dataset.systemPoints = String(systemRows.length);
    var last = systemRows[systemRows.length - 1];
    function show(id, text) {
      var span = document.getElementById(id);
      if (span && last) span.textContent = text;
    }
    if (last) {
      var n = function (v) { return v === null ? "–" : Math.round(v).toLocaleString("en-US"); };
      show("now-mem", n(last[1]) + " MB, guests " + n(last[2]) + " MB, board " + n(last[3]) + " MB");
      show("now-util-sys", n(last[4]) + " % + " + n(last[5]) + " % guests");
      show("now-procs", n(last[6]));
      show("now-rates", n(last[7]) + " spawned/s, " + n(last[8]) + " crashed/s");
      show("now-queues", n(last[9]) + " waiting, " + n(last[10]) + " background");
      show("now-host", "CPU " + n(last[11]) + " %, memory " + n(last[12]) + " %");
    }
  }
  document.addEventListener("htmx:wsAfterMessage", takeSystemData);
})();
