// The call page: waveform lanes from the server's peaks, turns and tool calls on the
// timeline, latency bars and interruption markers, and the transcript kept in step with
// the audio. Reads the page's JSON twin (/calls/{id}.json); no framework, no build step.
(function () {
  "use strict";

  var root = document.getElementById("call");
  if (!root) { return; }
  var audio = document.getElementById("player");
  var timeline = document.getElementById("timeline");
  var markers = document.getElementById("markers");
  var bars = document.getElementById("latency-bars");
  var playhead = document.getElementById("playhead");
  var clockText = document.getElementById("clock");
  var playButton = document.getElementById("play");
  var turns = Array.prototype.slice.call(document.querySelectorAll("#transcript li.turn"));
  var starts = turns.map(function (li) { return Number(li.dataset.startMs); });
  var ends = turns.map(function (li) { return Number(li.dataset.endMs); });
  var durationMs = Number(timeline.dataset.durationMs) || 0;
  var current = -1;
  var data = null;

  function clock(ms) {
    var tenths = Math.round(ms / 100);
    var s = Math.floor(tenths / 10), t = tenths % 10, m = Math.floor(s / 60);
    s = s % 60;
    var h = Math.floor(m / 60);
    m = m % 60;
    var ss = (s < 10 ? "0" : "") + s;
    if (h) { return h + ":" + (m < 10 ? "0" : "") + m + ":" + ss + "." + t; }
    return m + ":" + ss + "." + t;
  }

  function span() {
    var fromAudio = audio && isFinite(audio.duration) && audio.duration > 0 ? audio.duration * 1000 : 0;
    return Math.max(durationMs, fromAudio, 1);
  }

  function percent(ms) { return (100 * ms / span()) + "%"; }

  // --- seeking and the current turn --------------------------------------------------------

  function seek(ms) {
    if (!audio) { return; }
    audio.currentTime = ms / 1000;
    update();
  }

  function turnAt(ms) {
    // The latest turn that has started and not ended; else the latest that has started.
    var found = -1, started = -1;
    for (var i = 0; i < starts.length; i++) {
      if (starts[i] <= ms) {
        started = i;
        if (ms < Math.max(ends[i], starts[i] + 1)) { found = i; }
      }
    }
    return found >= 0 ? found : started;
  }

  function setCurrent(index, scroll) {
    if (index === current) { return; }
    if (current >= 0 && turns[current]) {
      turns[current].classList.remove("current");
      turns[current].removeAttribute("aria-current");
      var old = markers.querySelector('[data-turn="' + (current + 1) + '"]');
      if (old) { old.classList.remove("current"); }
    }
    current = index;
    if (index < 0 || !turns[index]) { return; }
    turns[index].classList.add("current");
    turns[index].setAttribute("aria-current", "true");
    var mark = markers.querySelector('[data-turn="' + (index + 1) + '"]');
    if (mark) { mark.classList.add("current"); }
    if (scroll) { turns[index].scrollIntoView({ block: "nearest" }); }
  }

  function update() {
    if (!audio) { return; }
    var ms = audio.currentTime * 1000;
    playhead.hidden = false;
    playhead.style.left = percent(ms);
    if (clockText) { clockText.textContent = clock(ms); }
    setCurrent(turnAt(ms), !audio.paused);
  }

  var ticking = false;
  function tick() {
    update();
    if (audio && !audio.paused) { window.requestAnimationFrame(tick); } else { ticking = false; }
  }

  function toggle() {
    if (!audio) { return; }
    if (audio.paused) { audio.play(); } else { audio.pause(); }
  }

  function step(delta) {
    if (!turns.length) { return; }
    var from = current;
    if (from < 0) { from = delta > 0 ? -1 : turns.length; }
    var index = Math.min(Math.max(from + delta, 0), turns.length - 1);
    seek(starts[index]);
    setCurrent(index, true);
    turns[index].querySelector("button.seek").focus({ preventScroll: true });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.seek");
    if (button && root.contains(button)) {
      seek(Number(button.dataset.seekMs));
      var li = button.closest("li.turn");
      if (li) { setCurrent(turns.indexOf(li), false); }
      return;
    }
    var copy = event.target.closest("button.copy");
    if (copy) {
      var done = function () { copy.textContent = "Copied"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(copy.dataset.copy).then(done, function () {}); }
    }
  });

  timeline.addEventListener("click", function (event) {
    if (!audio) { return; }
    var box = timeline.getBoundingClientRect();
    seek(Math.max(0, (event.clientX - box.left) / box.width) * span());
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || tag === "AUDIO" ||
        (target && target.isContentEditable) || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    if (event.key === " " || event.key === "Spacebar") {
      if (tag === "SUMMARY") { return; }
      event.preventDefault();
      toggle();
    } else if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      event.preventDefault();
      step(1);
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      event.preventDefault();
      step(-1);
    }
  });

  if (audio) {
    audio.addEventListener("play", function () {
      if (playButton) { playButton.textContent = "Pause"; playButton.setAttribute("aria-label", "Pause (space)"); }
      if (!ticking) { ticking = true; window.requestAnimationFrame(tick); }
    });
    audio.addEventListener("pause", function () {
      if (playButton) { playButton.textContent = "Play"; playButton.setAttribute("aria-label", "Play (space)"); }
      update();
    });
    audio.addEventListener("seeked", update);
    audio.addEventListener("timeupdate", update);
    audio.addEventListener("loadedmetadata", function () { update(); layout(); });
    if (playButton) { playButton.addEventListener("click", toggle); }
    var prev = document.getElementById("prev-turn");
    var next = document.getElementById("next-turn");
    if (prev) { prev.addEventListener("click", function () { step(-1); }); }
    if (next) { next.addEventListener("click", function () { step(1); }); }
  }

  // --- drawing -------------------------------------------------------------------------------

  function element(tag, className, title) {
    var node = document.createElement(tag);
    node.className = className;
    if (title) { node.title = title; }
    return node;
  }

  function layout() {
    if (!data) { return; }
    markers.textContent = "";
    Array.prototype.forEach.call(timeline.querySelectorAll(".tl-gap, .tl-cut"), function (n) { n.remove(); });
    Array.prototype.forEach.call(bars.querySelectorAll(".tl-bar"), function (n) { n.remove(); });

    data.turns.forEach(function (turn) {
      var mark = element("div", "marker " + turn.role,
        "Turn " + turn.number + " · " + turn.speaker + " · " + clock(turn.startMs));
      mark.dataset.turn = turn.number;
      mark.style.left = percent(turn.startMs);
      mark.style.width = percent(Math.max(turn.endMs - turn.startMs, 0));
      markers.appendChild(mark);
    });
    data.tools.forEach(function (tool, index) {
      if (tool.startMs === null) { return; }
      var mark = element("div", "marker tool", "Tool call " + tool.name + " · " + clock(tool.startMs));
      mark.dataset.tool = index + 1;
      mark.style.left = percent(tool.startMs);
      markers.appendChild(mark);
    });
    data.recording.gaps.forEach(function (gap) {
      if (gap.startMs === null) { return; }
      var shade = element("div", "tl-gap", gap.note);
      shade.dataset.chunk = gap.chunkIndex;
      shade.style.left = percent(gap.startMs);
      shade.style.width = percent(gap.lengthMs || span() * 0.005);
      timeline.appendChild(shade);
    });
    var slowest = data.latencies.reduce(function (m, l) { return Math.max(m, l.valueMs); }, 1);
    data.latencies.forEach(function (latency) {
      var bar = element("div", "tl-bar",
        (latency.turn ? "Turn " + latency.turn + ": " : "") + "answered after " + (latency.valueMs / 1000).toFixed(2) + " s");
      bar.dataset.turn = latency.turn || "";
      bar.dataset.latencyMs = latency.valueMs;
      bar.style.left = percent(latency.atMs);
      bar.style.height = Math.max(8, 100 * latency.valueMs / slowest) + "%";
      bars.appendChild(bar);
    });
    data.interruptions.forEach(function (cut) {
      var line = element("div", "tl-cut",
        "Interruption at " + clock(cut.atMs) + (cut.playedFraction !== null ? " · " + Math.round(cut.playedFraction * 100) + "% of the turn played" : ""));
      line.dataset.turn = cut.turn || "";
      line.style.left = percent(cut.atMs);
      timeline.appendChild(line);
    });
    timeline.dataset.laidOut = "1";
  }

  function drawLane(canvas, peaks, scale) {
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    var height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d");
    var style = getComputedStyle(canvas.closest(".lane"));
    context.fillStyle = canvas.dataset.lane === "user" ? style.getPropertyValue("--user") : style.getPropertyValue("--bot");
    var middle = height / 2, count = peaks.length;
    var covered = Math.min(1, (data && data.recording.durationMs ? data.recording.durationMs : span()) / span());
    for (var x = 0; x < width * covered; x++) {
      var from = Math.floor(x / (width * covered) * count);
      var to = Math.max(from + 1, Math.floor((x + 1) / (width * covered) * count));
      var peak = 0;
      for (var i = from; i < to && i < count; i++) { if (peaks[i] > peak) { peak = peaks[i]; } }
      var h = Math.max(1, (peak / scale) * (height / 2 - 2));
      context.fillRect(x, middle - h, 1, 2 * h);
    }
    canvas.dataset.drawn = String(count);
  }

  function drawWaves(peaks) {
    var lanes = peaks.lanes;
    var scale = 1;
    lanes.forEach(function (lane) { lane.peaks.forEach(function (p) { if (p > scale) { scale = p; } }); });
    var canvases = timeline.querySelectorAll("canvas.wave");
    Array.prototype.forEach.call(canvases, function (canvas, index) {
      var lane = lanes.length === 1 ? lanes[0] : lanes[index];
      if (lane) { drawLane(canvas, lane.peaks, scale); }
    });
  }

  var peaksData = null;
  fetch(root.dataset.json, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (answer) { return answer.json(); })
    .then(function (body) {
      data = body;
      layout();
      if (timeline.dataset.peaks) {
        return fetch(timeline.dataset.peaks, { credentials: "same-origin" })
          .then(function (answer) { return answer.ok ? answer.json() : null; })
          .then(function (peaks) { if (peaks) { peaksData = peaks; drawWaves(peaks); } });
      }
      return null;
    })
    .then(function () { root.dataset.ready = "1"; });

  function redraw() { layout(); if (peaksData) { drawWaves(peaksData); } }
  window.addEventListener("resize", redraw);
  // Lane colours come from the theme: draw again when it changes.
  document.addEventListener("themechange", redraw);
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) { scheme.addEventListener("change", redraw); }
  }
})();
