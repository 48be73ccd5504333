// Flowgate's one script. Every page works without it: times are written
// in UTC and a running instance's page can be reloaded by hand.
"use strict";
(function () {
  // Times in the browser's time zone; the UTC text stays as the tooltip.
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      t.title = t.textContent;
      t.textContent = fmt.format(d);
    }
  });
  // A link marked data-follow is where the page sends the browser on
  // (to sign in at another site); without the script it is clicked.
  var follow = document.querySelector("a[data-follow]");
  if (follow) {
    location.assign(follow.href);
  }
  // A page marked data-refresh (an instance that has not ended) reloads
  // itself while it is shown and nobody is typing in it.
  var live = document.querySelector("[data-refresh]");
  if (live) {
    setInterval(function () {
      var a = document.activeElement;
      if (!document.hidden && !(a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName))) {
        location.reload();
      }
    }, 1000 * Number(live.getAttribute("data-refresh") || 30));
  }
})();
