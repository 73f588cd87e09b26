#!/usr/bin/env bash
# Fails if any collected test log holds a secret: admin API keys, password hashes, TOTP
# secrets and enrolment URIs, signed tokens (room links, ID tokens), session cookies, and the
# fixed passwords and client secret the tests use. Usage: no-secrets-in-logs.sh DIR
set -euo pipefail
dir=${1:?usage: no-secrets-in-logs.sh DIR}
patterns=(
  'kt_[0-9a-f]{64}'                                        # admin API keys
  '\$argon2id\$'                                           # password hashes
  'otpauth://'                                             # TOTP enrolment URIs
  '[?&]secret=[A-Z2-7]{16,}'                               # TOTP secrets
  'eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}' # JWTs (room tokens, ID tokens)
  '(ketang_admin|ketang_csrf|ketang_teacher|ketang_oidc)=[A-Za-z0-9_.-]{16,}' # session cookies
  'Correct horse 42 staple'                                # the tests' account password
  'idp-client-secret-for-tests'                            # the tests' OIDC client secret
)
found=0
for p in "${patterns[@]}"; do
  if grep -rEqI -e "$p" "$dir"; then
    grep -rEnI -e "$p" "$dir" | head -3 | cut -c1-200 | sed "s|^|secret ($p) in a log: |" >&2
    found=1
  fi
done
if [ "$found" = 1 ]; then
  echo "test logs hold secrets (see above)" >&2
  exit 1
fi
echo "no secrets in $(find "$dir" -type f | wc -l) log file(s)"
