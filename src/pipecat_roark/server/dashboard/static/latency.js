// The call page's latency waterfalls: under the waveform, on the recording's time axis, each
// reply's parts from the user's last word to the bot's first sample (the owner on hover),
// and under each reply its turn's spans from Pipecat's traces (attributes one click away).
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function css(node, styles) {
    Object.keys(styles).forEach(function (name) { node.style[name] = styles[name]; });
  }

  function ms(seconds) { return Math.round(seconds * 1000) + " ms"; }

  function bar(axis, startMs, durationMs, kind, label, title) {
    var left = Math.max(0, Math.min(100, (startMs / axis) * 100));
    var width = Math.max(0.15, Math.min(100 - left, (durationMs / axis) * 100));
    var node = el("span", { "class": "bar " + kind, "title": title, "data-key": label });
    // Styled through the CSSOM: the page's CSP allows no style attributes.
    css(node, { position: "absolute", top: "0", bottom: "0", left: left + "%", width: width + "%",
      background: colour(label), borderRight: "1px solid #fff" });
    return node;
  }

  function colour(key) {
    var palette = { endpointing_wait: "#9aa5b1", transcription: "#4e79a7", turn_detection: "#b07aa1",
      llm_inference: "#f28e2b", llm_tool_call: "#e15759", function_handler: "#e15759",
      speech_synthesis: "#59a14f", output_transport: "#76b7b2", pipeline: "#bab0ac",
      unattributed: "#d3d3d3", stt: "#4e79a7", llm: "#f28e2b", tts: "#59a14f" };
    return palette[key] || "#edc948";
  }

  function track(label) {
    var row = el("div", { "class": "track" });
    row.appendChild(el("span", { "class": "track-label" }, label));
    var lane = el("div", { "class": "track-lane" });
    css(lane, { position: "relative", height: "14px", background: "rgba(0,0,0,.04)" });
    row.appendChild(lane);
    return { row: row, lane: lane };
  }

  function spansOfTurn(spans, turn) {
    return spans.filter(function (s) { return s.parentSpanId === turn.spanId; });
  }

  function turnFor(spans, reply) {
    // The turn span under way when the reply ended (the bot's start of speech), by the
    // wall clock both were measured on.
    var end = Date.parse(reply.endedAt);
    if (!isFinite(end)) { return null; }
    var found = null;
    spans.forEach(function (t) {
      if (t.name !== "turn") { return; }
      if (t.startTimeUnixNano / 1e6 <= end && end <= t.endTimeUnixNano / 1e6 + 50) { found = t; }
    });
    return found;
  }

  function render(section, data) {
    var axis = Math.max(Number(section.dataset.durationMs) || 0, 1);
    var list = el("ol", { "class": "replies" });
    data.replies.forEach(function (reply, index) {
      if (reply.audioOffsetMs === undefined) { return; }
      var item = el("li", { "class": "reply", "data-turn": reply.turnIndex === undefined ? "" : String(reply.turnIndex) });
      item.appendChild(el("p", { "class": "reply-title" },
        "Reply " + (index + 1) + ": " + ms(reply.value) + " from the user's last word to the bot's first sample"));
      var parts = track("parts");
      reply.contributions.forEach(function (c) {
        var title = c.label + ": " + ms(c.durationSecs) + " (" + c.owner + ", " + c.ownerKind + ")";
        parts.lane.appendChild(bar(axis, c.audioOffsetMs || 0, c.durationSecs * 1000, "part", c.key, title));
      });
      item.appendChild(parts.row);
      var table = el("table", { "class": "parts" });
      reply.contributions.forEach(function (c) {
        var tr = el("tr");
        tr.appendChild(el("td", {}, c.label));
        tr.appendChild(el("td", {}, ms(c.durationSecs)));
        tr.appendChild(el("td", {}, c.owner + " (" + c.ownerKind + ")"));
        table.appendChild(tr);
      });
      item.appendChild(table);
      var turn = turnFor(data.spans, reply);
      if (turn) {
        spansOfTurn(data.spans, turn).forEach(function (s) {
          var row = track(s.name);
          row.row.setAttribute("data-span", s.name);
          var b = bar(axis, s.audioOffsetMs, s.endAudioOffsetMs - s.audioOffsetMs, "span", s.name,
            s.name + ": " + Math.round(s.durationMs) + " ms");
          row.lane.appendChild(b);
          var details = el("details", { "class": "span-attributes" });
          details.appendChild(el("summary", {}, s.name + " " + Math.round(s.durationMs) + " ms" +
            (s.status && s.status.code === 2 ? " (error)" : "")));
          details.appendChild(el("pre", {}, JSON.stringify(s.attributes, null, 2)));
          row.row.appendChild(details);
          item.appendChild(row.row);
        });
      }
      list.appendChild(item);
    });
    if (list.children.length) {
      section.appendChild(list);
      section.hidden = false;
    }
    section.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("latency");
    if (!section) { return; }
    fetch(section.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { replies: [], spans: [] }; })
      .then(function (data) { render(section, data); })
      .catch(function () { section.dataset.ready = "1"; });
  });
})();
