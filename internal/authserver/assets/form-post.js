// Sends the authorization response on to the application as soon as the
// page has loaded (response_mode=form_post). Without JavaScript the
// page's button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("response");
  if (form) {
    form.submit();
  }
});
