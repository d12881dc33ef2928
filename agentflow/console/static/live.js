// Live pages: the server pushes a server-sent event whenever an instance changes; the
// page then fetches itself again and swaps in the new <main>. No framework, no build.
// A page that holds a half-typed form is not swapped until the field is left empty.
(function () {
  "use strict";
  var main = document.getElementById("live");
  if (!main || !main.dataset.live || !window.EventSource) { return; }
  var which = main.dataset.live;
  var query = "after=" + encodeURIComponent(main.dataset.after || "");
  if (which !== "all") { query += "&instance=" + encodeURIComponent(which); }
  var url = "/events?" + query;
  var source = new EventSource(url);
  var timer = null;
  function busy() {
    var fields = main.querySelectorAll("textarea, input[type=text], select");
    var active = document.activeElement;
    for (var i = 0; i < fields.length; i++) {
      if (fields[i] === active || (fields[i].tagName === "TEXTAREA" && fields[i].value)) { return true; }
    }
    return false;
  }
  function refresh() {
    timer = null;
    if (busy()) { timer = setTimeout(refresh, 1000); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) { main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes)); }
        main.dataset.seq = String(Number(main.dataset.seq || 0) + 1);
      });
  }
  source.onmessage = function () { if (timer === null) { timer = setTimeout(refresh, 20); } };
})();
