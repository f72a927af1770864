
use builtin;
use str;

set edit:completion:arg-completer[bouncectl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'bouncectl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'bouncectl'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)'
            cand hash 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file'
            cand size 'Size the pools for PostgreSQL''s connection limit and print a pgbouncer.ini snippet'
            cand generate 'Render shell completions or man pages from this command line (for packagers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bouncectl;serve'= {
            cand -d 'Run in the background (needs pidfile in the configuration)'
            cand --daemon 'Run in the background (needs pidfile in the configuration)'
            cand -q 'Log nothing to stderr'
            cand --quiet 'Log nothing to stderr'
            cand -v 'More log output (repeat for more)'
            cand --verbose 'More log output (repeat for more)'
            cand --check-config 'Read and check the configuration, print every problem as file:line: message, and exit (0 when valid, 2 otherwise)'
            cand --print-config 'Print the effective settings as a pgbouncer.ini (defaults included, passwords masked) and exit'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'bouncectl;hash'= {
            cand -u 'The PostgreSQL role name (md5 secrets are salted with it)'
            cand --user 'The PostgreSQL role name (md5 secrets are salted with it)'
            cand --password 'The password (visible in the process list: prefer --password-stdin or the prompt)'
            cand --method 'How to compute the md5 secret'
            cand --database-url 'Server for --method psql/all (libpq URL)'
            cand --iterations 'PBKDF2 iterations of the SCRAM verifier'
            cand --write 'Insert or replace the user''s entry in this userlist.txt (atomic; created with mode 0600)'
            cand --password-stdin 'Read the password from the first line of standard input'
            cand --scram 'Print a SCRAM-SHA-256 verifier instead of an md5 secret'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'bouncectl;size'= {
            cand --instances 'Application instances (processes, pods) that connect through the pooler'
            cand --per-instance 'Connections each instance opens (its driver''s pool size)'
            cand --headroom 'Extra connections kept for migrations, cron jobs and consoles'
            cand --pg-max-connections 'PostgreSQL''s max_connections (omit to size for demand alone)'
            cand --admin-reserve 'Connections kept free for superusers and admins'
            cand --reserve-pool 'reserve_pool_size to suggest'
            cand --poolers 'Pooler replicas that share PostgreSQL''s connections'
            cand --json 'Print one JSON document on stdout instead of text'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bouncectl;generate'= {
            cand --out 'Directory to write into (created when missing)'
            cand --check 'Write nothing; exit 1 when a file in --out differs from what would be written'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'bouncectl;help'= {
            cand serve 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)'
            cand hash 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file'
            cand size 'Size the pools for PostgreSQL''s connection limit and print a pgbouncer.ini snippet'
            cand generate 'Render shell completions or man pages from this command line (for packagers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bouncectl;help;serve'= {
        }
        &'bouncectl;help;hash'= {
        }
        &'bouncectl;help;size'= {
        }
        &'bouncectl;help;generate'= {
        }
        &'bouncectl;help;help'= {
        }
    ]
    $completions[$command]
}
