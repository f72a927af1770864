
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'bouncectl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'bouncectl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'bouncectl' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)')
            [CompletionResult]::new('hash', 'hash', [CompletionResultType]::ParameterValue, 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file')
            [CompletionResult]::new('size', 'size', [CompletionResultType]::ParameterValue, 'Size the pools for PostgreSQL''s connection limit and print a pgbouncer.ini snippet')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Render shell completions or man pages from this command line (for packagers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bouncectl;serve' {
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Run in the background (needs pidfile in the configuration)')
            [CompletionResult]::new('--daemon', '--daemon', [CompletionResultType]::ParameterName, 'Run in the background (needs pidfile in the configuration)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log nothing to stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log nothing to stderr')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output (repeat for more)')
            [CompletionResult]::new('--check-config', '--check-config', [CompletionResultType]::ParameterName, 'Read and check the configuration, print every problem as file:line: message, and exit (0 when valid, 2 otherwise)')
            [CompletionResult]::new('--print-config', '--print-config', [CompletionResultType]::ParameterName, 'Print the effective settings as a pgbouncer.ini (defaults included, passwords masked) and exit')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'bouncectl;hash' {
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'The PostgreSQL role name (md5 secrets are salted with it)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'The PostgreSQL role name (md5 secrets are salted with it)')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'The password (visible in the process list: prefer --password-stdin or the prompt)')
            [CompletionResult]::new('--method', '--method', [CompletionResultType]::ParameterName, 'How to compute the md5 secret')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Server for --method psql/all (libpq URL)')
            [CompletionResult]::new('--iterations', '--iterations', [CompletionResultType]::ParameterName, 'PBKDF2 iterations of the SCRAM verifier')
            [CompletionResult]::new('--write', '--write', [CompletionResultType]::ParameterName, 'Insert or replace the user''s entry in this userlist.txt (atomic; created with mode 0600)')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of standard input')
            [CompletionResult]::new('--scram', '--scram', [CompletionResultType]::ParameterName, 'Print a SCRAM-SHA-256 verifier instead of an md5 secret')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'bouncectl;size' {
            [CompletionResult]::new('--instances', '--instances', [CompletionResultType]::ParameterName, 'Application instances (processes, pods) that connect through the pooler')
            [CompletionResult]::new('--per-instance', '--per-instance', [CompletionResultType]::ParameterName, 'Connections each instance opens (its driver''s pool size)')
            [CompletionResult]::new('--headroom', '--headroom', [CompletionResultType]::ParameterName, 'Extra connections kept for migrations, cron jobs and consoles')
            [CompletionResult]::new('--pg-max-connections', '--pg-max-connections', [CompletionResultType]::ParameterName, 'PostgreSQL''s max_connections (omit to size for demand alone)')
            [CompletionResult]::new('--admin-reserve', '--admin-reserve', [CompletionResultType]::ParameterName, 'Connections kept free for superusers and admins')
            [CompletionResult]::new('--reserve-pool', '--reserve-pool', [CompletionResultType]::ParameterName, 'reserve_pool_size to suggest')
            [CompletionResult]::new('--poolers', '--poolers', [CompletionResultType]::ParameterName, 'Pooler replicas that share PostgreSQL''s connections')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bouncectl;generate' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Directory to write into (created when missing)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Write nothing; exit 1 when a file in --out differs from what would be written')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'bouncectl;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the pooler (PgBouncer-compatible; with no CONFIG, the embedded default)')
            [CompletionResult]::new('hash', 'hash', [CompletionResultType]::ParameterValue, 'Print a userlist.txt entry (md5 or SCRAM-SHA-256) for a user, or write it into the file')
            [CompletionResult]::new('size', 'size', [CompletionResultType]::ParameterValue, 'Size the pools for PostgreSQL''s connection limit and print a pgbouncer.ini snippet')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Render shell completions or man pages from this command line (for packagers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bouncectl;help;serve' {
            break
        }
        'bouncectl;help;hash' {
            break
        }
        'bouncectl;help;size' {
            break
        }
        'bouncectl;help;generate' {
            break
        }
        'bouncectl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
