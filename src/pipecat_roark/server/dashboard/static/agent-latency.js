// The agent page's attribution table: for each part of the agent's replies (key, owner,
// owner kind), the replies that have it, its p50 and p95 and its share of the replies' p95.
(function () {
  "use strict";

  function cell(row, text, tag) {
    var node = document.createElement(tag || "td");
    node.textContent = text;
    row.appendChild(node);
  }

  function ms(seconds) { return seconds === null ? "—" : Math.round(seconds * 1000) + " ms"; }

  function render(section, data) {
    var total = data.total;
    if (!total.replies) { section.dataset.ready = "1"; return; }
    var summary = document.createElement("p");
    summary.textContent = total.replies + " replies from " + data.from + " to " + data.to +
      ": p50 " + ms(total.p50) + ", p95 " + ms(total.p95) + ".";
    section.appendChild(summary);
    var table = document.createElement("table");
    table.className = "attribution";
    var head = document.createElement("tr");
    ["Part", "Owner", "Kind", "Replies", "p50", "p95", "Share of p95"].forEach(function (h) { cell(head, h, "th"); });
    table.appendChild(head);
    total.parts.forEach(function (p) {
      var row = document.createElement("tr");
      row.dataset.key = p.key;
      cell(row, p.key);
      cell(row, p.owner);
      cell(row, p.ownerKind);
      cell(row, String(p.replies));
      cell(row, ms(p.p50));
      cell(row, ms(p.p95));
      cell(row, p.shareOfP95 === null ? "—" : Math.round(p.shareOfP95 * 100) + "%");
      table.appendChild(row);
    });
    section.appendChild(table);
    section.hidden = false;
    section.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("attribution");
    if (!section) { return; }
    fetch(section.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { total: { replies: 0 } }; })
      .then(function (data) { render(section, data); })
      .catch(function () { section.dataset.ready = "1"; });
  });
})();
