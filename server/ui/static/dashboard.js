// lutnas dashboard: small progressive enhancements; every page works without them.
"use strict";

(function () {
  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/signin"; throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      });
  }

  // Poll while the tab is visible; stop when fn() answers false (nothing left to follow).
  function every(ms, fn) {
    var timer = null;
    function tick() {
      if (document.hidden) { timer = setTimeout(tick, ms); return; }
      Promise.resolve(fn()).then(function (more) { if (more !== false) { timer = setTimeout(tick, ms); } },
                                 function () { timer = setTimeout(tick, ms * 3); });
    }
    timer = setTimeout(tick, ms);
    return function () { clearTimeout(timer); };
  }

  function progressText(s) {
    var p = s.progress;
    var t = "generation " + p.generation + "/" + p.generations + " · " + p.evaluated + " evaluated";
    return p.note ? t + " · " + p.note : t;
  }

  function setBar(container, percent) {
    var bar = container.querySelector(".bar");
    if (!bar) { return; }
    bar.setAttribute("aria-valuenow", String(percent));
    bar.firstElementChild.style.width = percent + "%";
  }

  function setStatus(el, status) {
    if (!el) { return; }
    el.textContent = status;
    el.className = "badge " + status;
  }

  // Searches list: live status and progress of queued/running searches.
  function followSearches(table) {
    var url = table.getAttribute("data-poll");
    every(2000, function () {
      var rows = table.querySelectorAll("tr[data-search]");
      var active = Array.prototype.some.call(rows, function (tr) {
        var st = tr.querySelector("[data-field=status]").textContent;
        return st === "queued" || st === "running";
      });
      if (!active) { return false; }
      return getJSON(url).then(function (data) {
        data.items.forEach(function (s) {
          var tr = table.querySelector('tr[data-search="' + s.id + '"]');
          if (!tr) { return; }
          setStatus(tr.querySelector("[data-field=status]"), s.status);
          tr.querySelector("[data-field=progress]").textContent = progressText(s);
          setBar(tr, s.percent);
          if (!s.active) {
            var form = tr.querySelector("form[data-cancel]");
            if (form) { form.remove(); }
          }
        });
      });
    });
  }

  // A running search's page: progress live, and a reload when it ends (the front appears).
  function followSearch(section) {
    var url = section.getAttribute("data-poll-search");
    every(2000, function () {
      return getJSON(url).then(function (s) {
        setStatus(document.getElementById("search-status"), s.status);
        section.querySelector("[data-field=progress]").textContent = progressText(s);
        setBar(section, s.percent);
        if (!s.active) { window.location.reload(); return false; }
        return true;
      });
    });
  }

  // Hardware: coverage bars move while agents measure.
  function followHardware(grid) {
    var url = grid.getAttribute("data-poll-hardware");
    every(3000, function () {
      return getJSON(url).then(function (data) {
        var working = false;
        data.items.forEach(function (h) {
          var card = grid.querySelector('[data-hardware="' + h.id + '"]');
          if (!card) { return; }
          var c = h.coverage;
          setBar(card, Math.round(100 * c.fraction));
          card.querySelector("[data-field=coverage]").textContent =
            c.measured + " / " + c.total + " units measured (" + Math.round(100 * c.fraction) + "%)";
          card.querySelector("[data-field=leased]").textContent = h.leased ? " · " + h.leased + " being measured now" : "";
          h.agents.forEach(function (a, i) {
            var el = card.querySelector('[data-agent="' + i + '"]');
            if (el) { el.textContent = a.last_seen; }
          });
          if (c.measured < c.total) { working = true; }
        });
        return working;
      });
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var input = document.querySelector(btn.getAttribute("data-copy"));
        var status = document.getElementById("copy-status");
        function done(ok) { if (status) { status.textContent = ok ? "Copied." : "Select the text and copy it."; } }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () {
            input.select(); done(document.execCommand("copy"));
          });
        } else {
          input.select(); done(document.execCommand("copy"));
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    var table = document.querySelector("table[data-poll]");
    if (table) { followSearches(table); }
    var section = document.querySelector("[data-poll-search]");
    if (section) { followSearch(section); }
    var grid = document.querySelector("[data-poll-hardware]");
    if (grid) { followHardware(grid); }
    copyButtons();
  });
})();
