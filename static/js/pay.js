// The payment page: Stripe's Payment Element in our form; Stripe sends the customer back to the return page.
(function () {
  "use strict";
  const form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") return;
  const stripe = Stripe(form.dataset.publishableKey);
  const elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  const element = elements.create("payment");
  element.mount("#payment-element");
  const message = document.getElementById("payment-message");
  const button = document.getElementById("pay-button");

  function showError(text) {
    message.textContent = text || "The payment did not go through.";
    message.hidden = false;
  }

  // localstripe's stand-in stripe.js (tests and the demo) has no confirmPayment: its card form makes a
  // token, which the server confirms (the page offers that address only when Stripe is the stand-in).
  async function confirmWithStandIn() {
    const result = await stripe.createToken(element);
    if (result.error) return showError(result.error.message);
    const body = new FormData();
    body.append("card_token", result.token.id);
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    const response = await fetch(form.dataset.doubleConfirmUrl, { method: "POST", body: body, credentials: "same-origin" });
    const answer = await response.json().catch(function () { return {}; });
    if (answer.redirect) window.location.assign(answer.redirect);
    else showError(answer.error);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    message.hidden = true;
    if (typeof stripe.confirmPayment !== "function" && form.dataset.doubleConfirmUrl) {
      await confirmWithStandIn();
    } else {
      const result = await stripe.confirmPayment({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } });
      // Only reached when the payment could not be confirmed (otherwise Stripe redirects).
      if (result && result.error) showError(result.error.message);
    }
    button.disabled = false;
  });
})();
