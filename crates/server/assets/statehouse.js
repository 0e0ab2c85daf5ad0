// statehouse web UI: the few things that need a script. Every page works without it.
//
// - [data-refresh]: the element's contents are fetched again from that address (a server-rendered
//   partial) every data-every seconds while the page is visible.
// - [data-copy]: a button that copies the text of the element with that id.
// - [data-insecure-warning]: shown when the page is not in a secure context (plain HTTP to a
//   non-local host), where the browser drops the Secure session cookie.
"use strict";

(function () {
  function refresh(region) {
    if (document.hidden) {
      return;
    }
    fetch(region.dataset.refresh, {
      credentials: "same-origin",
      headers: { "X-Statehouse-Partial": "1" },
    })
      .then(function (response) {
        if (response.redirected || response.status === 401) {
          // The session ended: let the full page show the sign-in.
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          region.innerHTML = html;
          region.dataset.refreshedAt = String(Date.now());
        }
      })
      .catch(function () {
        // A failed refresh keeps what is shown; the next one tries again.
      });
  }

  function setUpRefresh(region) {
    var seconds = parseInt(region.dataset.every || "15", 10);
    if (!(seconds >= 2)) {
      seconds = 15;
    }
    window.setInterval(function () {
      refresh(region);
    }, seconds * 1000);
  }

  function setUpCopy(button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) {
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        window.setTimeout(function () {
          button.textContent = label;
        }, 1500);
      });
    });
  }

  if (!window.isSecureContext) {
    document.querySelectorAll("[data-insecure-warning]").forEach(function (el) {
      el.hidden = false;
    });
  }
  document.querySelectorAll("[data-refresh]").forEach(setUpRefresh);
  document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
})();
