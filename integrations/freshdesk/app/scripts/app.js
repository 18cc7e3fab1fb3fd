// Billbox sidebar for Freshdesk (Freshworks app platform 2.3).
//
// The panel is fetched with the request template "billboxPanel" (config/requests.json):
// Freshworks' servers fill in the secure installation parameter sidebar_token as
// "Authorization: Bearer …", so the token never reaches this browser. Billbox compares
// it in constant time and shows the panel for the ticket requester's email.
(function () {
  'use strict';

  function say(text) {
    var status = document.getElementById('status');
    if (status) { status.textContent = text; }
  }

  function show(html) {
    // Billbox's panel goes in a sandboxed frame without allow-scripts: nothing in it runs.
    var frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-same-origin allow-popups allow-popups-to-escape-sandbox');
    frame.setAttribute('title', 'Billbox billing context');
    frame.srcdoc = html;
    frame.onload = function () {
      frame.style.height = frame.contentDocument.body.scrollHeight + 'px';
    };
    var status = document.getElementById('status');
    if (status) { status.remove(); }
    document.body.appendChild(frame);
  }

  function render(client) {
    client.data.get('requester')
      .then(function (data) {
        var email = data && data.requester && data.requester.email;
        if (!email) { say('This ticket has no requester email.'); return null; }
        return client.request.invokeTemplate('billboxPanel', { context: { email: email } })
          .then(function (answer) { show(answer.response); });
      })
      .catch(function (error) {
        say('Billbox is not reachable right now (' + ((error && error.status) || 'error') + ').');
      });
  }

  document.onreadystatechange = function () {
    if (document.readyState !== 'complete') { return; }
    app.initialized().then(function (client) {
      client.events.on('app.activated', function () { render(client); });
    });
  };
})();
