// ingestload's page and report block: the sections of a test as tables, and the rate chart
// (target vs offered vs acknowledged msg/s, lateness p99 on the right axis) drawn by uPlot.
// Live mode (data-mode="live") fetches data-state-url every 2 s; report mode renders
// window.INGESTLOAD_SNAPSHOT once. The snapshot is WebSession.snapshot() (ingestload.webui.session).
(function () {
  "use strict";

  var POLL_MS = 2000;
  var root = document.getElementById("ingestload");
  if (!root) return;
  var mode = root.getAttribute("data-mode") || "report";
  var chart = null;
  var chartRun = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function statusClass(status) {
    return status ? "ingestload-status ingestload-status-" + String(status).toLowerCase() : "ingestload-status";
  }

  function header(snap) {
    var box = el("div", "ingestload-header");
    box.appendChild(el("h2", null, "ingestload"));
    if (!snap.run_id) {
      box.appendChild(el("p", "ingestload-note", "No test yet: start one from Locust's page; it shows here."));
      return box;
    }
    var line = el("p", "ingestload-line");
    line.appendChild(el("span", null, "run " + snap.run_id + " · " + snap.phase));
    if (snap.target) line.appendChild(el("span", null, " · target " + snap.target));
    if (snap.status) {
      line.appendChild(document.createTextNode(" "));
      line.appendChild(el("span", statusClass(snap.status), snap.status + " (exit code " + snap.exit_code + ")"));
    }
    box.appendChild(line);
    if (mode === "live") {
      var links = el("p", "ingestload-links");
      var items = [["verdict.json", "verdict (JSON)"], ["ledger.json", "ack ledger (JSON)"], ["../stats/report", "HTML report"]];
      items.forEach(function (item, i) {
        var a = el("a", null, item[1]);
        a.href = item[0];
        if (i) links.appendChild(document.createTextNode(" · "));
        links.appendChild(a);
      });
      box.appendChild(links);
    }
    return box;
  }

  function table(section) {
    var wrap = el("section", "ingestload-section ingestload-section-" + section.key);
    wrap.setAttribute("data-section", section.key);
    wrap.appendChild(el("h3", null, section.title));
    var t = el("table", "ingestload-table");
    var keyValue = section.columns.length === 1 && !section.columns[0];
    if (!keyValue) {
      var head = el("tr");
      head.appendChild(el("th", null, ""));
      section.columns.forEach(function (c) { head.appendChild(el("th", null, c)); });
      var thead = el("thead");
      thead.appendChild(head);
      t.appendChild(thead);
    }
    var body = el("tbody");
    section.rows.forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("th", null, row[0]));
      row.slice(1).forEach(function (v) {
        var td = el("td", null, v);
        if (/^(PASS|FAIL|INCONCLUSIVE)$/.test(v)) td.className = statusClass(v);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    wrap.appendChild(t);
    return wrap;
  }

  function chartColumns(series) {
    return [series.time, series.target, series.offered, series.acked, series.lateness_p99_ms];
  }

  function chartWidth(box) {
    return Math.max(480, Math.min(1400, (box.clientWidth || root.clientWidth || 960) - 8));
  }

  function drawChart(box, snap) {
    if (typeof uPlot === "undefined") {
      box.appendChild(el("p", "ingestload-note",
        "The rate chart needs uPlot: run make install (it installs it with npm)."));
      return;
    }
    var data = chartColumns(snap.chart);
    if (chart && chartRun === snap.run_id && chart.root.parentNode === box) {
      chart.setData(data);
      return;
    }
    box.innerHTML = "";
    var opts = {
      title: "target vs offered vs acknowledged (msg/s) · lateness p99 (ms, right axis)",
      width: chartWidth(box),
      height: 320,
      scales: { x: { time: true }, rate: { auto: true, range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } },
        ms: { auto: true, range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
      series: [
        {},
        { label: "target msg/s", scale: "rate", stroke: "#616161", width: 2, dash: [8, 5] },
        { label: "offered msg/s", scale: "rate", stroke: "#1565c0", width: 2 },
        { label: "acked msg/s", scale: "rate", stroke: "#2e7d32", width: 2 },
        { label: "lateness p99 ms", scale: "ms", stroke: "#c62828", width: 1 }
      ],
      axes: [
        {},
        { scale: "rate", label: "msg/s", size: 70 },
        { scale: "ms", side: 1, label: "lateness p99 (ms)", grid: { show: false }, size: 60 }
      ]
    };
    chart = new uPlot(opts, data, box);
    chartRun = snap.run_id;
  }

  var chartBox = null;
  var tablesBox = null;

  function render(snap) {
    if (!chartBox) {
      root.innerHTML = "";
      root.appendChild(el("div", "ingestload-head"));
      chartBox = el("div", "ingestload-chart");
      chartBox.setAttribute("data-role", "chart");
      tablesBox = el("div", "ingestload-tables");
      root.appendChild(chartBox);
      root.appendChild(tablesBox);
    }
    var head = root.querySelector(".ingestload-head");
    head.innerHTML = "";
    head.appendChild(header(snap));
    root.setAttribute("data-run-id", snap.run_id || "");
    root.setAttribute("data-phase", snap.phase || "");
    root.setAttribute("data-status", snap.status || "");
    if (snap.run_id) {
      drawChart(chartBox, snap);
    } else {
      chartBox.innerHTML = "";
      chart = null;
    }
    tablesBox.innerHTML = "";
    (snap.sections || []).forEach(function (s) { tablesBox.appendChild(table(s)); });
  }

  if (mode === "live") {
    var url = root.getAttribute("data-state-url") || "state.json";
    var poll = function () {
      fetch(url, { cache: "no-store", credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (snap) { render(snap); root.removeAttribute("data-error"); })
        .catch(function (e) { root.setAttribute("data-error", String(e)); })
        .then(function () { setTimeout(poll, POLL_MS); });
    };
    poll();
  } else if (window.INGESTLOAD_SNAPSHOT) {
    render(window.INGESTLOAD_SNAPSHOT);
  }
})();
