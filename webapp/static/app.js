// Progressive enhancement only: every page works without this script.
// 1. <time datetime> elements show the viewer's local time; 2. exports in progress update themselves.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }); el.title = el.getAttribute("datetime"); }
    });
  }
  function fmt(n) { return n === null || n === undefined ? "\u2014" : Number(n).toLocaleString("en-US"); }
  function poll(row) {
    var url = row.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (e) {
        if (!e) { return; }
        row.setAttribute("data-status", e.status);
        row.querySelector(".status").textContent = e.status + (e.error ? ": " + e.error : "");
        row.querySelector(".rows").textContent = fmt(e.rows);
        row.querySelector(".bytes").textContent = fmt(e.bytes);
        if (e.status === "done") {
          var cell = row.querySelector(".file"); cell.textContent = "";
          var a = document.createElement("a"); a.href = "/app/exports/" + e.id + "/download"; a.setAttribute("download", ""); a.textContent = "Download"; cell.appendChild(a);
        } else if (e.status === "pending" || e.status === "running") {
          setTimeout(function () { poll(row); }, 1000);
        }
      })
      .catch(function () { setTimeout(function () { poll(row); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("tr[data-poll]").forEach(poll);
  });
})();
