// Treadle control plane: the little behaviour the server-rendered pages need.
// No inline scripts anywhere (the CSP forbids them); everything hooks up from data-* attributes.
(function () {
  "use strict";

  // -- bulk selection on /jobs -------------------------------------------------
  function updateCount() {
    var boxes = document.querySelectorAll('input[name="ids"]');
    var n = 0;
    boxes.forEach(function (b) { if (b.checked) n++; });
    var out = document.getElementById("selected-count");
    if (out) out.textContent = n + " selected";
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.id === "select-all") {
      document.querySelectorAll('input[name="ids"]').forEach(function (b) { b.checked = t.checked; });
    }
    if (t && (t.id === "select-all" || t.name === "ids")) updateCount();
  });

  // -- polling must not wipe what the user is typing --------------------------------
  // A poll that would replace a region while an input inside it has focus is skipped
  // (the next one runs once focus leaves). Done here, not with an hx-trigger filter,
  // because filters need eval, which the CSP forbids.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var el = e.detail && e.detail.elt;
    var active = document.activeElement;
    if (el && el.hasAttribute("data-hold-while-editing") && active && active !== document.body &&
        el.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
      e.preventDefault();
    }
  });

  // -- charts (uPlot) ------------------------------------------------------------
  var palette = ["#1a7f37", "#cf222e", "#0969da", "#8250df", "#bf8700", "#57606a", "#e16f24", "#1b7c83", "#a40e26"];
  function seriesFor(kind, d) {
    if (kind === "throughput") {
      return { labels: ["succeeded", "failed"], data: [d.x, d.succeeded, d.failed] };
    }
    if (kind === "latency") {
      return { labels: ["p50", "p95", "p99"], data: [d.x, d.p50, d.p95, d.p99] };
    }
    var names = Object.keys(d.error_classes);
    if (!names.length) { names = ["(none)"]; return { labels: names, data: [d.x, d.x.map(function () { return 0; })] }; }
    return { labels: names, data: [d.x].concat(names.map(function (n) { return d.error_classes[n]; })) };
  }
  function drawChart(el, d) {
    var kind = el.getAttribute("data-chart");
    var s = seriesFor(kind, d);
    var width = Math.max(260, el.clientWidth || 600);
    var opts = {
      width: width, height: 220,
      series: [{}].concat(s.labels.map(function (l, i) {
        return { label: l, stroke: palette[(kind === "throughput" ? i : i + 2) % palette.length], width: 2, spanGaps: kind === "latency", points: { show: kind === "latency" ? true : undefined } };
      })),
      axes: [{}, { size: 60 }],
      legend: { live: true },
    };
    if (el._plot) { el._plot.destroy(); }
    el.textContent = "";
    el._plot = new window.uPlot(opts, s.data, el);
  }
  function loadCharts() {
    var charts = document.querySelectorAll("[data-chart]");
    if (!charts.length || !window.uPlot) return;
    var byWindow = {};
    charts.forEach(function (el) {
      var w = el.getAttribute("data-window") || "1h";
      (byWindow[w] = byWindow[w] || []).push(el);
    });
    Object.keys(byWindow).forEach(function (w) {
      fetch("/ui/data/series.json?window=" + encodeURIComponent(w), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) byWindow[w].forEach(function (el) { drawChart(el, d); }); })
        .catch(function () { /* keep the last chart; the next poll retries */ });
    });
  }

  // -- code editor (CodeMirror 5) ------------------------------------------------
  function setupEditor() {
    var ta = document.querySelector("textarea[data-editor]");
    if (!ta || !window.CodeMirror) return;
    var lang = document.querySelector("[data-editor-language]");
    var cm = window.CodeMirror.fromTextArea(ta, {
      mode: "javascript", lineNumbers: true, indentUnit: 2, tabSize: 2,
      viewportMargin: Infinity, screenReaderLabel: "Code",
    });
    // Keep the textarea current: HTMX serialises the form itself, not through CodeMirror.
    cm.on("change", function () { cm.save(); });
    var templates = { javascript: document.getElementById("tpl-javascript"), python: document.getElementById("tpl-python") };
    function tpl(l) { var t = templates[l]; return t ? t.innerHTML.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&") : ""; }
    if (lang) {
      lang.addEventListener("change", function () {
        var prev = lang.value === "python" ? "javascript" : "python";
        var untouched = cm.getValue() === tpl(prev);
        cm.setOption("mode", lang.value);
        cm.setOption("indentUnit", lang.value === "python" ? 4 : 2);
        if (untouched) cm.setValue(tpl(lang.value));
      });
    }
    document.body.classList.add("has-editor");
  }

  document.addEventListener("DOMContentLoaded", function () {
    updateCount();
    loadCharts();
    setupEditor();
    if (document.querySelector("[data-chart]")) {
      setInterval(loadCharts, 15000);
      var resizeTimer;
      window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(loadCharts, 250); });
    }
  });
  // -- the job page follows the job's live stream (Server-Sent Events) -----------------
  // Replays what is stored, then appends as it happens; closed on "end" so the browser
  // does not reconnect to a finished job. Text is set with textContent, never as HTML.
  var MAX_STREAM_LINES = 500;
  function followStream(card) {
    var url = card.getAttribute("data-stream-url");
    if (!url || !window.EventSource) return;
    var list = card.querySelector("[data-stream-items]");
    var box = card.querySelector("[data-stream-progress]");
    var bar = box && box.querySelector("progress");
    var label = card.querySelector("[data-stream-progress-label]");
    var es = new EventSource(url);
    es.addEventListener("item", function (e) {
      var item = JSON.parse(e.data);
      card.hidden = false;
      var prefix = item.attempt > 1 ? "[attempt " + item.attempt + "] " : "";
      if (item.kind === "progress" && bar) {
        var d = item.data || {};
        box.hidden = false;
        if (d.total) { bar.max = d.total; bar.value = d.done; } else { bar.removeAttribute("value"); }
        label.textContent = prefix + d.done + (d.total ? " / " + d.total : "") +
          (d.message ? " \u2014 " + d.message : "");
        return;
      }
      var li = document.createElement("li");
      li.className = "stream-" + (item.kind === "log" || item.kind === "trimmed" ? item.kind : "item");
      li.textContent = prefix + (item.kind === "log" ? item.data : item.kind + ": " + JSON.stringify(item.data));
      list.appendChild(li);
      while (list.children.length > MAX_STREAM_LINES) list.removeChild(list.firstChild);
      list.scrollTop = list.scrollHeight;
    });
    es.addEventListener("end", function () { es.close(); });
  }
  document.querySelectorAll("[data-stream-url]").forEach(followStream);
})();
