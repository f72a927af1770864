# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bouncectl_global_optspecs
    string join \n h/help V/version
end

function __fish_bouncectl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bouncectl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bouncectl_using_subcommand
    set -l cmd (__fish_bouncectl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bouncectl -n "__fish_bouncectl_needs_command" -s h -l help -d 'Print help'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -s V -l version -d 'Print version'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -f -a "serve" -d 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -f -a "hash" -d 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -f -a "size" -d 'Size the pools for PostgreSQL\'s connection limit and print a pgbouncer.ini snippet'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -f -a "generate" -d 'Render shell completions or man pages from this command line (for packagers)'
complete -c bouncectl -n "__fish_bouncectl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -s d -l daemon -d 'Run in the background (needs pidfile in the configuration)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -s q -l quiet -d 'Log nothing to stderr'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -s v -l verbose -d 'More log output (repeat for more)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -l check-config -d 'Read and check the configuration, print every problem as file:line: message, and exit (0 when valid, 2 otherwise)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -l print-config -d 'Print the effective settings as a pgbouncer.ini (defaults included, passwords masked) and exit'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -s h -l help -d 'Print help'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand serve" -s V -l version -d 'Print version'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -s u -l user -d 'The PostgreSQL role name (md5 secrets are salted with it)' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l password -d 'The password (visible in the process list: prefer --password-stdin or the prompt)' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l method -d 'How to compute the md5 secret' -r -f -a "native\t'In-process, as pg_md5 does'
psql\t'Ask PostgreSQL: SELECT \'md5\' || md5($1 || $2), parameters bound'
shell\t'The system md5sum, fed through stdin (never the command line)'
all\t'Every available method; exit 1 when they disagree'"
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l database-url -d 'Server for --method psql/all (libpq URL)' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l iterations -d 'PBKDF2 iterations of the SCRAM verifier' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l write -d 'Insert or replace the user\'s entry in this userlist.txt (atomic; created with mode 0600)' -r -F
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l password-stdin -d 'Read the password from the first line of standard input'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l scram -d 'Print a SCRAM-SHA-256 verifier instead of an md5 secret'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -l json -d 'Print one JSON document on stdout instead of text'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand hash" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l instances -d 'Application instances (processes, pods) that connect through the pooler' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l per-instance -d 'Connections each instance opens (its driver\'s pool size)' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l headroom -d 'Extra connections kept for migrations, cron jobs and consoles' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l pg-max-connections -d 'PostgreSQL\'s max_connections (omit to size for demand alone)' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l admin-reserve -d 'Connections kept free for superusers and admins' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l reserve-pool -d 'reserve_pool_size to suggest' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l poolers -d 'Pooler replicas that share PostgreSQL\'s connections' -r
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -l json -d 'Print one JSON document on stdout instead of text'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand size" -s h -l help -d 'Print help'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand generate" -l out -d 'Directory to write into (created when missing)' -r -F
complete -c bouncectl -n "__fish_bouncectl_using_subcommand generate" -l check -d 'Write nothing; exit 1 when a file in --out differs from what would be written'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand help; and not __fish_seen_subcommand_from serve hash size generate help" -f -a "serve" -d 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand help; and not __fish_seen_subcommand_from serve hash size generate help" -f -a "hash" -d 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand help; and not __fish_seen_subcommand_from serve hash size generate help" -f -a "size" -d 'Size the pools for PostgreSQL\'s connection limit and print a pgbouncer.ini snippet'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand help; and not __fish_seen_subcommand_from serve hash size generate help" -f -a "generate" -d 'Render shell completions or man pages from this command line (for packagers)'
complete -c bouncectl -n "__fish_bouncectl_using_subcommand help; and not __fish_seen_subcommand_from serve hash size generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
