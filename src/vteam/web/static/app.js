// Small behaviours the server-rendered pages share; everything else is htmx attributes.

// Every htmx request carries the page's CSRF token (the web edge refuses a cookie-signed write without it).
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});

document.addEventListener("htmx:responseError", (event) => {
  const target = document.getElementById("flash-area");
  if (target) {
    target.textContent = "The server refused: " + (event.detail.xhr.statusText || event.detail.xhr.status);
  }
});

// Arriving from another site's link, the browser leaves the SameSite=Strict session cookie behind and the
// server shows the sign-in page; loading the same URL again from this page brings the cookie (once: this
// load is same-origin, so the server does not ask again).
if (document.querySelector('meta[name="vteam-renavigate"]')) {
  window.location.replace(window.location.href);
}
