#!/usr/bin/env bash
# `make demo`: Billbox on one machine with a local Stripe test account.
#
# localstripe (a local Stripe API, installed with the dev extras) runs beside
# Billbox for the session, so the demo's agent actions (refunds, a
# cancellation) and the admin's one-click actions reach a real gateway API,
# and localstripe's signed webhooks come back to /webhooks/stripe.
# Set STRIPE_API_KEY to your own sk_test_ key to use Stripe's test mode
# instead; without either, the demo fills the inbox and skips the actions.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export BILLBOX_DEMO=1
mkdir -p var

if [[ -z "${STRIPE_API_KEY:-}" ]] && "$BIN/python" -c "import localstripe" 2>/dev/null; then
  port=${DEMO_STRIPE_PORT:-8420}
  "$BIN/python" -m localstripe --port "$port" --from-scratch >var/localstripe.log 2>&1 &
  stripe_pid=$!
  trap 'kill "$stripe_pid" 2>/dev/null || true' EXIT
  export STRIPE_API_KEY=sk_test_billbox_demo
  export STRIPE_API_BASE="http://127.0.0.1:$port"
  export STRIPE_WEBHOOK_SECRET=whsec_billbox_demo_0123456789
  for _ in $(seq 50); do
    curl -fsS -o /dev/null -u "$STRIPE_API_KEY:" "$STRIPE_API_BASE/v1/customers" 2>/dev/null && break
    sleep 0.2
  done
  web=${BILLBOX_WEB_LISTEN:-127.0.0.1:8000}
  curl -fsS -o /dev/null -X POST "$STRIPE_API_BASE/_config/webhooks/billbox" \
    -d "url=http://$web/webhooks/stripe" -d "secret=$STRIPE_WEBHOOK_SECRET"
  echo "localstripe on $STRIPE_API_BASE (log: var/localstripe.log)"
fi

"$BIN/billbox" db upgrade
"$BIN/billbox" demo
"$BIN/billbox" up
