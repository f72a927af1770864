#!/bin/sh
# Puts a bouncectl build in poolbench's PgBouncer slot, for a same-run A/B of two builds under
# identical conditions (the tables still call that row "pgbouncer"):
#
#   BOUNCECTL_BASELINE=/path/to/older/bouncectl poolbench --pgbouncer bench/as-pgbouncer.sh \
#       --candidate 'target/release/bouncectl serve {config}' --only pgbouncer,candidate
#
# poolbench runs its PgBouncer as `PGBOUNCER --version` and `PGBOUNCER CONFIG`; `serve` takes both.
set -eu
: "${BOUNCECTL_BASELINE:?names the bouncectl binary to run in the PgBouncer slot}"
exec "$BOUNCECTL_BASELINE" serve "$1"
