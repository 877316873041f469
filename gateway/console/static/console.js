// The console's live updates: an EventSource on /events (Server-Sent Events). The browser
// reconnects by itself after a network error (the server asks for 1 s); after an answer other
// than 200 (the console restarted: sign in again; too many streams) this script retries with a
// growing delay and sends the user to the sign-in page when the session is gone.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  var delay = 1000;
  function pct(v) { return typeof v === "number" ? (v * 100).toFixed(1) + "%" : "—"; }
  function num(v) { return typeof v === "number" ? v.toFixed(1) : "—"; }
  function count(v) { return typeof v === "number" ? v.toFixed(0) : "—"; }
  function text(id, v) { var e = document.getElementById(id); if (e) { e.textContent = v; } }
  function cell(tr, v) { var td = document.createElement("td"); td.textContent = v || ""; tr.appendChild(td); }
  function overview(d) {
    var box = document.getElementById("overview");
    if (!box) { return; }
    box.setAttribute("data-version", d.version);
    text("batch", d.batch || "—");
    text("packml", d.packml || "—");
    text("bags_per_min", num(d.bags_per_min));
    text("batch_counts", count(d.batch_bags) + " / " + count(d.batch_cases));
    text("shift", d.shift || "—");
    text("scan_rate_window", pct(d.scan_rate_window));
    text("scan_rate_shift", pct(d.scan_rate_shift));
    text("threshold", pct(d.threshold));
    text("broker", d.broker);
    var body = document.querySelector("#devices tbody");
    body.textContent = "";
    Object.keys(d.devices).forEach(function (name) {
      var v = d.devices[name], tr = document.createElement("tr");
      tr.className = "state-" + v.state; tr.setAttribute("data-device", name);
      cell(tr, name); cell(tr, v.state); cell(tr, v.detail); cell(tr, v.ts);
      body.appendChild(tr);
    });
    var gws = document.getElementById("gateways");
    gws.textContent = "";
    Object.keys(d.gateways).forEach(function (g) {
      var li = document.createElement("li"); li.textContent = g + ": " + d.gateways[g]; gws.appendChild(li);
    });
    var alarms = document.querySelector("#alarms tbody");
    alarms.textContent = "";
    d.alarms.forEach(function (a) {
      var tr = document.createElement("tr");
      cell(tr, a.ts); cell(tr, a.type); cell(tr, a.device); cell(tr, a.detail);
      alarms.appendChild(tr);
    });
  }
  function reload(id, key, version) {  // a page's charts, drawn again when their data changed
    var box = document.getElementById(id);
    if (!box || String(version) === box.getAttribute("data-" + key)) { return; }
    box.setAttribute("data-" + key, version);
    Array.prototype.forEach.call(box.querySelectorAll("img.chart"), function (img) {
      img.src = img.getAttribute("data-base") + "&v=" + version;
    });
  }
  function charts(d) {
    reload("charts", "kpi-version", d.kpi_version);
    reload("ccp-charts", "ccp-version", d.ccp_version);
  }
  function connect() {
    var es = new EventSource("/events");
    es.addEventListener("open", function () { delay = 1000; live.setAttribute("data-state", "live"); live.textContent = "实时"; });
    es.addEventListener("line", function (ev) {
      var d = JSON.parse(ev.data);
      overview(d); charts(d);
    });
    es.addEventListener("error", function () {
      live.setAttribute("data-state", "lost"); live.textContent = "连接中断，重连中…";
      if (es.readyState !== EventSource.CLOSED) { return; }  // the browser retries itself
      fetch("/api/line", {credentials: "same-origin"}).then(function (r) {
        if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(window.location.pathname); }
      }).catch(function () {});
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }
  connect();
})();
