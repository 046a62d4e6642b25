// lutnas dashboard charts (plotly.js from the plotly wheel, served by the app).
"use strict";

(function () {
  var COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d", "#e67700"];

  function count(v) {
    if (v === null || v === undefined) { return "–"; }
    if (v >= 1e9) { return (v / 1e9).toFixed(2) + " G"; }
    if (v >= 1e6) { return (v / 1e6).toFixed(2) + " M"; }
    if (v >= 1e3) { return (v / 1e3).toFixed(1) + " k"; }
    return String(v);
  }

  function scoreText(s, se) {
    return s.toFixed(4) + (se === null || se === undefined ? "" : " ± " + se.toFixed(4));
  }

  // customdata: [id, lighttrack, score text, MACs, params]; one template for every point.
  var HOVER = "<b>%{customdata[1]}</b><br>score %{customdata[2]}<br>latency %{x:.3f} ms" +
              "<br>MACs %{customdata[3]} · params %{customdata[4]}<extra>%{fullData.name}</extra>";

  function frontTrace(t, color, name) {
    var pts = t.points;
    var hasSe = pts.some(function (p) { return p.score_se !== null; });
    return {
      type: "scatter", mode: "lines+markers", name: name, line: { shape: "hv", color: color, width: 1.5 },
      marker: { size: 9, color: color, line: { color: "#fff", width: 1 } },
      x: pts.map(function (p) { return p.latency_ms; }), y: pts.map(function (p) { return p.score; }),
      error_y: hasSe ? { type: "data", array: pts.map(function (p) { return p.score_se || 0; }), visible: true,
                         color: color, thickness: 1, width: 3 } : undefined,
      customdata: pts.map(function (p) {
        return [p.architecture_id, p.lighttrack, scoreText(p.score, p.score_se), count(p.flops), count(p.params)];
      }),
      hovertemplate: HOVER, meta: { role: "front", hardware_id: t.id }
    };
  }

  function candidateTrace(c, hid, color) {
    var lat = c.latency_ms[String(hid)] || [];
    var x = [], y = [], cd = [];
    for (var i = 0; i < c.id.length; i++) {
      if (lat[i] === null || lat[i] === undefined) { continue; }
      x.push(lat[i]); y.push(c.score[i]);
      cd.push([c.id[i], c.lighttrack[i], scoreText(c.score[i], c.score_se[i]), count(c.flops[i]), count(c.params[i])]);
    }
    return {
      type: "scatter", mode: "markers", name: "evaluated (" + x.length + ")", x: x, y: y, customdata: cd,
      marker: { size: 5, color: color, opacity: 0.22 }, hovertemplate: HOVER, meta: { role: "candidates", hardware_id: hid }
    };
  }

  // Many candidates: one image of faded dots placed in data coordinates (plotly stretches it with
  // zoom), and an empty trace that stands for it in the legend.
  function backdrop(c, hid, range, el) {
    var lat = c.latency_ms[String(hid)] || [];
    // the plot area's own size and pixel density, so dots stay round and sharp (narrow windows too)
    var dpr = window.devicePixelRatio || 1;
    var w = Math.round(Math.max(240, el.clientWidth - 80) * dpr), h = Math.round(Math.max(200, el.clientHeight - 72) * dpr);
    var canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "rgba(107, 114, 128, 0.22)";
    var n = 0;
    for (var i = 0; i < c.score.length; i++) {
      if (lat[i] === null || lat[i] === undefined) { continue; }
      var px = (lat[i] - range.x[0]) / (range.x[1] - range.x[0]) * w;
      var py = (range.y[1] - c.score[i]) / (range.y[1] - range.y[0]) * h;
      ctx.beginPath(); ctx.arc(px, py, 2.5 * dpr, 0, 2 * Math.PI); ctx.fill();
      n++;
    }
    return {
      image: { source: canvas.toDataURL("image/png"), xref: "x", yref: "y", x: range.x[0], y: range.y[1],
               sizex: range.x[1] - range.x[0], sizey: range.y[1] - range.y[0], sizing: "stretch",
               xanchor: "left", yanchor: "top", layer: "below" },
      legend: { type: "scatter", mode: "markers", name: "evaluated (" + n + ")", x: [null], y: [null],
                marker: { size: 6, color: "#6b7280", opacity: 0.35 }, hoverinfo: "skip",
                meta: { role: "candidates", hardware_id: hid, count: n } }
    };
  }

  function paddedRange(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (!isFinite(lo)) { return [0, 1]; }
    var pad = (hi - lo) * 0.04 || Math.abs(hi) * 0.05 || 0.5;
    return [lo - pad, hi + pad];
  }

  function referenceTrace(t, color) {
    var r = t.reference;
    return {
      type: "scatter", mode: "markers", name: r.name, x: [r.latency_ms], y: [r.score],
      marker: { symbol: "star", size: 15, color: "#f59f00", line: { color: color, width: 1.5 } },
      error_y: r.score_se !== null ? { type: "data", array: [r.score_se], visible: true, color: "#f59f00" } : undefined,
      customdata: [[r.architecture_id, r.lighttrack, scoreText(r.score, r.score_se), "–", "–"]],
      hovertemplate: HOVER, meta: { role: "reference", hardware_id: t.id }
    };
  }

  function frontChart(el, data) {
    var select = document.getElementById("target");

    function draw(choice) {
      var traces = [];
      var title;
      if (choice === "all") {
        data.targets.forEach(function (t, i) {
          traces.push(frontTrace(t, COLORS[i % COLORS.length], "front on " + t.name));
          if (t.reference) { traces.push(referenceTrace(t, COLORS[i % COLORS.length])); traces[traces.length - 1].name += " on " + t.name; }
        });
        title = "latency (ms), each target";
      }
      var layout = {
        margin: { l: 64, r: 16, t: 16, b: 56 }, hovermode: "closest", showlegend: true,
        legend: { orientation: "h", y: -0.18 }, xaxis: { zeroline: false },
        yaxis: { title: { text: "validation score" }, zeroline: false }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
        images: []
      };
      if (choice !== "all") {
        var t = data.targets[choice];
        var c = data.candidates;
        if (c.hover) {
          traces.push(candidateTrace(c, t.id, "#6b7280"));
        } else {
          var lat = (c.latency_ms[String(t.id)] || []).concat(t.points.map(function (p) { return p.latency_ms; }));
          var sc = c.score.concat(t.points.map(function (p) { return p.score + (p.score_se || 0); }),
                                  t.points.map(function (p) { return p.score - (p.score_se || 0); }));
          if (t.reference) { lat.push(t.reference.latency_ms); sc.push(t.reference.score); }
          var range = { x: paddedRange(lat), y: paddedRange(sc) };
          var bd = backdrop(c, t.id, range, el);
          traces.push(bd.legend);
          layout.images = [bd.image];
          layout.xaxis.range = range.x;
          layout.yaxis.range = range.y;
        }
        traces.push(frontTrace(t, COLORS[0], "Pareto front (" + t.points.length + ")"));
        if (t.reference) { traces.push(referenceTrace(t, COLORS[0])); }
        title = "latency on " + t.name + " (ms)";
      }
      layout.xaxis.title = { text: title };
      el.removeAttribute("data-ready");
      performance.mark("lutnas-front-start");
      return Plotly.react(el, traces, layout, { responsive: true, displaylogo: false }).then(function () {
        performance.mark("lutnas-front-drawn");
        el.setAttribute("data-ready", "1");
      });
    }

    function showTables(choice) {
      document.querySelectorAll(".front-table, #hypervolumes li").forEach(function (node) {
        node.hidden = choice !== "all" && node.getAttribute("data-target") !== String(choice);
      });
    }

    var first = select ? select.value : "0";
    draw(first === "all" ? "all" : Number(first)).then(function () {
      // the backdrop's legend entry shows or hides the image (its trace has no points to toggle)
      el.on("plotly_legendclick", function (ev) {
        var meta = ev.data[ev.curveNumber].meta;
        if (!meta || meta.role !== "candidates" || data.candidates.hover) { return true; }
        var img = el.layout.images && el.layout.images[0];
        if (img) { Plotly.relayout(el, { "images[0].visible": img.visible === false }); }
        return false;
      });
      el.on("plotly_click", function (ev) {
        var p = ev.points && ev.points[0];
        // LightTrack-Mobile is a reference, not one of the team's evaluated architectures
        if (!p || !p.customdata || (p.data.meta && p.data.meta.role === "reference")) { return; }
        var hid = p.data.meta && p.data.meta.hardware_id;
        window.location.href = "/ui/architectures/" + encodeURIComponent(p.customdata[0]) + "?search=" +
          data.search_id + (hid ? "&hardware_id=" + hid : "");
      });
    });
    showTables(first);
    if (select) {
      select.addEventListener("change", function () {
        var v = select.value === "all" ? "all" : Number(select.value);
        draw(v); showTables(select.value);
      });
    }
  }

  function breakdownChart(el, b) {
    var units = b.units.filter(function (u) { return u.ms !== null; });
    var kinds = { stem: "#495057", dsconv: "#495057", mbconv: "#1f5fbf", adjust: "#0b7285", neck: "#0b7285",
                  head: "#d9480f", cls: "#862e9c", reg: "#862e9c" };
    var labels = units.map(function (u, i) { return (i + 1) + ". " + u.label; });
    labels.push("per-run overhead");
    var values = units.map(function (u) { return u.ms; });
    values.push(b.overhead_ms);
    var trace = {
      type: "bar", orientation: "h", y: labels, x: values,
      marker: { color: units.map(function (u) { return kinds[u.kind] || "#868e96"; }).concat(["#adb5bd"]) },
      customdata: units.map(function (u) { return u.key; }).concat(["overhead"]),
      hovertemplate: "%{y}<br>%{x:.4f} ms<br>%{customdata}<extra></extra>"
    };
    var layout = {
      margin: { l: 260, r: 16, t: 8, b: 48 }, xaxis: { title: { text: "ms on " + b.name } },
      yaxis: { autorange: "reversed", automargin: true }, paper_bgcolor: "#fff", plot_bgcolor: "#fff"
    };
    el.style.height = Math.max(320, 22 * labels.length + 80) + "px";
    Plotly.newPlot(el, [trace], layout, { responsive: true, displaylogo: false }).then(function () {
      el.setAttribute("data-ready", "1");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("chart-data");
    if (!node || typeof Plotly === "undefined") { return; }
    var data = JSON.parse(node.textContent);
    var front = document.getElementById("front-plot");
    if (front && data.targets) { frontChart(front, data); }
    var bars = document.getElementById("breakdown-plot");
    if (bars && data.breakdown && data.breakdown.units.length) { breakdownChart(bars, data.breakdown); }
  });
})();
