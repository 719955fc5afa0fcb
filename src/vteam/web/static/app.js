// Small behaviours the server-rendered pages share; everything else is htmx attributes.
document.addEventListener("htmx:responseError", (event) => {
  const target = document.getElementById("flash-area");
  if (target) {
    target.textContent = "The server refused: " + (event.detail.xhr.statusText || event.detail.xhr.status);
  }
});
