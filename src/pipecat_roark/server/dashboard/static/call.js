// The call page: waveform lanes from the server's peaks on a zoomable time axis, turns,
// tool calls, latency bars and interruptions as lanes on that axis, the transcript kept in
// step with the audio, links to a moment (#t=12.3), and a call in progress that follows
// itself by polling its JSON twin. No framework, no build step.
(function () {
  "use strict";

  var POLL_MS = 3000;
  var ZOOMS = [1, 2, 4, 8, 16, 32, 64, 128];
  var view = null;  // the mounted call: its elements and data; replaced when a live call changes

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

  function element(tag, className, title) {
    var node = document.createElement(tag);
    node.className = className;
    if (title) { node.title = title; }
    return node;
  }

  function each(nodes, action) { Array.prototype.forEach.call(nodes, action); }

  // --- the time axis -------------------------------------------------------------------------

  function span() {
    var audio = view.audio;
    var fromAudio = audio && isFinite(audio.duration) && audio.duration > 0 ? audio.duration * 1000 : 0;
    return Math.max(view.durationMs, fromAudio, 1);
  }

  function percent(ms) { return (100 * ms / span()) + "%"; }

  function visibleWindow() {
    // The part of the timeline on screen, in ms.
    var width = view.timeline.clientWidth || 1;
    var from = view.scroller.scrollLeft / width * span();
    return [from, from + view.scroller.clientWidth / width * span()];
  }

  function tickStep(windowMs, pixels) {
    var steps = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000];
    var wanted = windowMs / Math.max(pixels / 90, 1);
    for (var i = 0; i < steps.length; i++) { if (steps[i] >= wanted) { return steps[i]; } }
    return steps[steps.length - 1];
  }

  function drawRuler() {
    var ruler = view.ruler;
    ruler.textContent = "";
    var shown = visibleWindow();
    var stepMs = tickStep(shown[1] - shown[0], view.scroller.clientWidth);
    for (var at = Math.floor(shown[0] / stepMs) * stepMs; at <= shown[1] && at <= span(); at += stepMs) {
      var tick = element("span", "tick");
      tick.style.left = percent(at);
      tick.textContent = stepMs < 1000 ? clock(at) : clock(at).replace(/\.0$/, "");
      ruler.appendChild(tick);
    }
  }

  function applyZoom(level) {
    // Zoom in until about a second is on screen: single words stand apart.
    var limit = ZOOMS.filter(function (z) { return span() / z >= 1000; });
    var most = limit.length ? limit[limit.length - 1] : 1;
    var playing = view.audio ? view.audio.currentTime * 1000 : 0;
    view.zoom = Math.min(Math.max(level, 1), most);
    view.timeline.style.width = (100 * view.zoom) + "%";
    var zoomIn = document.getElementById("zoom-in"), zoomOut = document.getElementById("zoom-out");
    if (zoomIn) { zoomIn.disabled = view.zoom >= most; }
    if (zoomOut) { zoomOut.disabled = view.zoom <= 1; }
    var label = document.getElementById("zoom-level");
    if (label) {
      label.textContent = view.zoom === 1 ? "Whole call" : (Math.round(span() / view.zoom / 100) / 10) + " s on screen";
    }
    view.scroller.scrollLeft = playing / span() * view.timeline.clientWidth - view.scroller.clientWidth / 2;
    redraw();
  }

  function zoomBy(factor) {
    var index = ZOOMS.indexOf(view.zoom);
    applyZoom(ZOOMS[Math.min(Math.max(index + factor, 0), ZOOMS.length - 1)]);
  }

  // --- seeking and the current turn --------------------------------------------------------

  function seek(ms) {
    if (!view.audio) { return; }
    view.audio.currentTime = ms / 1000;
    update();
    follow(ms);
  }

  function turnAt(ms) {
    // The latest turn that has started and not ended; else the latest that has started.
    var found = -1, started = -1;
    for (var i = 0; i < view.starts.length; i++) {
      if (view.starts[i] <= ms) {
        started = i;
        if (ms < Math.max(view.ends[i], view.starts[i] + 1)) { found = i; }
      }
    }
    return found >= 0 ? found : started;
  }

  function setCurrent(index, scroll) {
    var turns = view.turns;
    if (index === view.current) { return; }
    if (view.current >= 0 && turns[view.current]) {
      turns[view.current].classList.remove("current");
      turns[view.current].removeAttribute("aria-current");
      var old = view.markers.querySelector('[data-turn="' + (view.current + 1) + '"]');
      if (old) { old.classList.remove("current"); }
    }
    view.current = index;
    if (index < 0 || !turns[index]) { return; }
    turns[index].classList.add("current");
    turns[index].setAttribute("aria-current", "true");
    var mark = view.markers.querySelector('[data-turn="' + (index + 1) + '"]');
    if (mark) { mark.classList.add("current"); }
    if (scroll) { reveal(turns[index]); }
  }

  function reveal(item) {
    // Scroll the transcript (not the page) to the item.
    var list = view.transcript;
    if (list.scrollHeight > list.clientHeight) {
      list.scrollTop = item.offsetTop - list.offsetTop - list.clientHeight / 3;
    } else {
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function follow(ms) {
    // When zoomed, keep the playhead on screen.
    if (view.zoom === 1) { return; }
    var shown = visibleWindow();
    if (ms < shown[0] || ms > shown[1]) {
      view.scroller.scrollLeft = ms / span() * view.timeline.clientWidth - view.scroller.clientWidth / 5;
    }
  }

  function update() {
    if (!view || !view.audio) { return; }
    var audio = view.audio;
    var ms = audio.currentTime * 1000;
    view.playhead.hidden = false;
    view.playhead.style.left = percent(ms);
    if (view.clock) { view.clock.textContent = clock(ms); }
    if (!audio.paused) { follow(ms); }
    setCurrent(turnAt(ms), !audio.paused);
  }

  function tick() {
    update();
    if (view.audio && !view.audio.paused) { window.requestAnimationFrame(tick); } else { view.ticking = false; }
  }

  function play() {
    // A pause before playback starts rejects play()'s promise: that is not an error.
    var started = view.audio.play();
    if (started && started.catch) { started.catch(function () {}); }
  }

  function toggle() {
    if (!view.audio) { return; }
    if (view.audio.paused) { play(); } else { view.audio.pause(); }
  }

  function playFrom(ms) {
    if (!view.audio) { return; }
    seek(ms);
    play();
  }

  function step(delta) {
    var turns = view.turns;
    if (!turns.length) { return; }
    var from = view.current;
    if (from < 0) { from = delta > 0 ? -1 : turns.length; }
    var index = Math.min(Math.max(from + delta, 0), turns.length - 1);
    seek(view.starts[index]);
    setCurrent(index, true);
  }

  // --- links to a moment ---------------------------------------------------------------------

  function hashMoment() {
    var found = /^#t=(\d+(?:\.\d+)?)$/.exec(window.location.hash);
    return found ? Number(found[1]) * 1000 : null;
  }

  function openAtHash() {
    var ms = hashMoment();
    if (ms === null) { return; }
    var index = turnAt(ms);
    if (index >= 0) { setCurrent(index, true); }
    if (!view.audio) { return; }
    var audio = view.audio;
    var go = function () { audio.pause(); seek(ms); follow(ms); };
    if (audio.readyState >= 1) { go(); } else { audio.addEventListener("loadedmetadata", go, { once: true }); }
  }

  function momentLink(ms) {
    // Rounded up to the tenth, so a link to a turn's onset lands inside that turn.
    return window.location.origin + window.location.pathname + "#t=" + (Math.ceil(ms / 100) / 10).toFixed(1);
  }

  function copied(button, text) {
    // The clipboard API needs a secure origin (or permission); else copy a selected field.
    var done = function () {
      button.firstChild.textContent = "Copied";
      button.dataset.copied = text;
    };
    var fallback = function () {
      var field = document.createElement("textarea");
      field.value = text;
      field.setAttribute("readonly", "");
      field.className = "visually-hidden";
      document.body.appendChild(field);
      field.select();
      try { document.execCommand("copy"); } catch (e) { /* the link stays in data-copied */ }
      field.remove();
      button.focus();
      done();
    };
    if (navigator.clipboard && navigator.clipboard.writeText && window.isSecureContext) {
      done();
      navigator.clipboard.writeText(text).catch(fallback);
    } else {
      fallback();
    }
  }

  // --- drawing -------------------------------------------------------------------------------

  function layout() {
    var data = view.data;
    if (!data) { return; }
    var timeline = view.timeline, markers = view.markers, bars = view.bars;
    markers.textContent = "";
    each(timeline.querySelectorAll(".tl-gap, .tl-cut"), function (n) { n.remove(); });
    each(bars.querySelectorAll(".tl-bar"), function (n) { n.remove(); });

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
      // The bar spans the wait itself: from the end of the user's speech to the answer.
      var from = latency.userSpeechEndMs !== null ? latency.userSpeechEndMs : latency.atMs - latency.valueMs;
      bar.style.left = percent(Math.max(0, from));
      bar.style.width = "max(4px, " + percent(Math.max(latency.atMs - from, 0)) + ")";
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
    var shownWidth = view.scroller.clientWidth;
    canvas.style.width = shownWidth + "px";
    var width = Math.max(1, Math.round(shownWidth * ratio));
    var height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d");
    var style = getComputedStyle(canvas.closest(".lane"));
    context.fillStyle = canvas.dataset.lane === "user" ? style.getPropertyValue("--user") : style.getPropertyValue("--bot");
    var middle = height / 2, count = peaks.length;
    var recorded = view.data && view.data.recording.durationMs ? view.data.recording.durationMs : span();
    var shown = visibleWindow();
    var msPerPixel = (shown[1] - shown[0]) / width;
    for (var x = 0; x < width; x++) {
      var t0 = shown[0] + x * msPerPixel, t1 = t0 + msPerPixel;
      if (t0 >= recorded) { break; }
      var from = Math.floor(t0 / recorded * count);
      var to = Math.max(from + 1, Math.floor(t1 / recorded * count));
      var peak = 0;
      for (var i = from; i < to && i < count; i++) { if (peaks[i] > peak) { peak = peaks[i]; } }
      var h = Math.max(1, (peak / scale) * (height / 2 - 2));
      context.fillRect(x, middle - h, 1, 2 * h);
    }
    canvas.dataset.drawn = String(count);
  }

  function drawWaves() {
    var peaks = view.peaks;
    if (!peaks) { return; }
    var lanes = peaks.lanes;
    var scale = 1;
    lanes.forEach(function (lane) { lane.peaks.forEach(function (p) { if (p > scale) { scale = p; } }); });
    each(view.timeline.querySelectorAll("canvas.wave"), function (canvas, index) {
      var lane = lanes.length === 1 ? lanes[0] : lanes[index];
      if (lane) { drawLane(canvas, lane.peaks, scale); }
    });
  }

  function redraw() {
    if (!view) { return; }
    layout();
    drawRuler();
    drawWaves();
    update();
  }

  // --- mounting, and a call in progress ---------------------------------------------------

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.json() : null; });
  }

  function mount(root, following) {
    var turns = Array.prototype.slice.call(root.querySelectorAll("#transcript li.turn"));
    var timeline = root.querySelector("#timeline");
    view = {
      root: root,
      audio: root.querySelector("#player"),
      timeline: timeline,
      scroller: root.querySelector("#scroller"),
      ruler: root.querySelector("#ruler"),
      markers: root.querySelector("#markers"),
      bars: root.querySelector("#latency-bars"),
      playhead: root.querySelector("#playhead"),
      clock: root.querySelector("#clock"),
      playButton: root.querySelector("#play"),
      transcript: root.querySelector("#transcript"),
      turns: turns,
      starts: turns.map(function (li) { return Number(li.dataset.startMs); }),
      ends: turns.map(function (li) { return Number(li.dataset.endMs); }),
      durationMs: Number(timeline.dataset.durationMs) || 0,
      current: -1,
      zoom: 1,
      ticking: false,
      data: null,
      peaks: null
    };
    var audio = view.audio;
    if (audio) {
      audio.addEventListener("play", function () {
        if (view.playButton) { view.playButton.textContent = "Pause"; }
        if (!view.ticking) { view.ticking = true; window.requestAnimationFrame(tick); }
      });
      audio.addEventListener("pause", function () {
        if (view.playButton) { view.playButton.textContent = "Play"; }
        update();
      });
      audio.addEventListener("seeked", update);
      audio.addEventListener("timeupdate", update);
      audio.addEventListener("loadedmetadata", function () { applyZoom(view.zoom); });
    }
    view.scroller.addEventListener("scroll", function () { drawRuler(); drawWaves(); });
    return getJson(root.dataset.json).then(function (body) {
      view.data = body;
      redraw();
      openAtHash();
      if (timeline.dataset.peaks) {
        return getJson(timeline.dataset.peaks).then(function (peaks) {
          if (peaks) { view.peaks = peaks; drawWaves(); }
        });
      }
      return null;
    }).then(function () {
      root.dataset.ready = "1";
      if (root.dataset.status !== "ENDED") {
        watch(root.dataset.json, signature(view.data), -1);
      } else if (following && view.data && !view.data.recording.available) {
        // Just ended: its recording is being stitched.
        watch(root.dataset.json, signature(view.data), 40);
      }
    });
  }

  function signature(data) {
    if (!data) { return ""; }
    return [data.call.status, data.turns.length, data.tools.length, data.recording.available].join("|");
  }

  function showReceived(recording) {
    var received = document.getElementById("received");
    if (!received) { return; }
    var count = recording.chunksReceived;
    received.textContent = count + " chunk" + (count === 1 ? "" : "s") + ", " +
      (Math.round(recording.bytesReceived / 104857.6) / 10).toFixed(1) + " MB";
  }

  function watch(url, seen, budget) {
    // A call in progress (or ended, not yet stitched): poll the JSON twin; when what the page
    // shows has changed, swap in the page's new content without reloading.
    if (budget === 0) { return; }
    var again = function () { watch(url, seen, budget - 1); };
    window.setTimeout(function () {
      if (!view || view.root.dataset.json !== url) { return; }
      getJson(url).then(function (data) {
        if (!data) { again(); return; }
        if (signature(data) === seen) { showReceived(data.recording); again(); return; }
        return fetch(window.location.pathname, { credentials: "same-origin", cache: "no-store" })
          .then(function (answer) { return answer.text(); })
          .then(function (html) {
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("call");
            if (!fresh) { again(); return; }
            view.root.replaceWith(fresh);
            mount(fresh, true);
          });
      }, again);
    }, POLL_MS);
  }

  // --- the page's events, bound once --------------------------------------------------------

  function isControl(target) {
    // Focus on something that has its own keys: its keys are its own.
    return !!(target && target.closest &&
      target.closest("a[href], button, input, select, textarea, summary, audio, video, dialog, [contenteditable], [tabindex]:not([tabindex='-1'])"));
  }

  document.addEventListener("click", function (event) {
    if (!view) { return; }
    var target = event.target;
    var button = target.closest("button.seek");
    if (button && view.root.contains(button)) {
      var li = button.closest("li.turn");
      if (li) { setCurrent(view.turns.indexOf(li), false); }
      playFrom(Number(button.dataset.seekMs));
      return;
    }
    var link = target.closest("button.copy-link");
    if (link) { copied(link, momentLink(Number(link.dataset.atMs))); return; }
    var copy = target.closest("button.copy");
    if (copy) { copied(copy, copy.dataset.copy); return; }
    if (target.closest("#play")) { toggle(); return; }
    if (target.closest("#prev-turn")) { step(-1); return; }
    if (target.closest("#next-turn")) { step(1); return; }
    if (target.closest("#zoom-in")) { zoomBy(1); return; }
    if (target.closest("#zoom-out")) { zoomBy(-1); return; }
    if (target.closest("#keys-open")) { showKeys(); return; }
    var timeline = target.closest("#timeline");
    if (timeline && view.audio) {
      var box = timeline.getBoundingClientRect();
      seek(Math.max(0, (event.clientX - box.left) / box.width) * span());
    }
  });

  function showKeys() {
    var dialog = document.getElementById("keys");
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  document.addEventListener("keydown", function (event) {
    if (!view || event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) { return; }
    var typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "?" && !typing) { event.preventDefault(); showKeys(); return; }
    if (isControl(event.target)) { return; }
    if (event.key === " " || event.key === "Spacebar" || event.key === "k") {
      event.preventDefault();
      toggle();
    } else if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      event.preventDefault();
      step(1);
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      event.preventDefault();
      step(-1);
    } else if (event.key === "+" || event.key === "=") {
      zoomBy(1);
    } else if (event.key === "-") {
      zoomBy(-1);
    }
  });

  window.addEventListener("hashchange", function () { if (view) { openAtHash(); } });
  window.addEventListener("resize", redraw);
  // Lane colours come from the theme: draw again when it changes.
  document.addEventListener("themechange", redraw);
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) { scheme.addEventListener("change", redraw); }
  }

  var first = document.getElementById("call");
  if (first) { mount(first, false); }
})();
