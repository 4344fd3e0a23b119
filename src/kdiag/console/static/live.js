// Live updates for the kdiag console (the only script; every page works without it).
// An element with data-poll="URL" is refreshed from URL every two seconds with the HTML
// fragment the server renders, until the fragment carries data-done.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var box = document.createElement("div");
        box.innerHTML = html;
        var fresh = box.firstElementChild;
        if (!fresh) { return; }
        el.replaceWith(fresh);
        if (fresh.hasAttribute("data-poll") && !fresh.hasAttribute("data-done")) {
          setTimeout(function () { poll(fresh); }, 2000);
        }
      })
      .catch(function () { setTimeout(function () { poll(el); }, 5000); });
  }
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    if (!el.hasAttribute("data-done")) { setTimeout(function () { poll(el); }, 1000); }
  });
})();
