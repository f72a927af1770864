use super::*;

#[test]
fn reads_the_supported_subset() {
    let text = "# comment\n\
                local all all peer map=m1\n\
                host all,\"all\" alice,@admins 10.0.0.0/8 md5\n\
                hostssl sameuser all 192.168.1.0 255.255.255.0 scram-sha-256 # trailing\n\
                hostnossl replication all ::1/128 reject\n\
                host all all all cert\n";
    let rules = parse(text, "hba.conf").unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0].conn_type, ConnType::Local);
    assert_eq!(rules[0].address, Address::None);
    assert_eq!(rules[0].options.get("map").map(String::as_str), Some("m1"));
    assert_eq!(
        rules[1].databases,
        vec![Name::All, Name::Literal("all".into())]
    );
    assert_eq!(
        rules[1].users,
        vec![Name::Literal("alice".into()), Name::File("admins".into())]
    );
    assert_eq!(
        rules[1].address,
        Address::Net {
            addr: "10.0.0.0".parse().unwrap(),
            prefix: 8
        }
    );
    assert_eq!(
        rules[2].address,
        Address::Net {
            addr: "192.168.1.0".parse().unwrap(),
            prefix: 24
        }
    );
    assert_eq!(rules[2].databases, vec![Name::SameUser]);
    assert_eq!(rules[3].method, Method::Reject);
    assert_eq!(rules[4].address, Address::All);
    assert_eq!(rules[4].line, 6);
}

#[test]
fn every_broken_line_is_reported() {
    let text = "hots all all all md5\n\
                host samerole all all md5\n\
                host all +group all md5\n\
                host all all db.example.com md5\n\
                host all all 10.0.0.0/33 md5\n\
                host all all 10.0.0.1 255.0.255.0 md5\n\
                host all all all any\n\
                host all all all peer\n\
                host all \"unterminated all all md5\n\
                host all\n";
    let errors = parse(text, "h.conf").unwrap_err();
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, (1..=10).collect::<Vec<_>>());
    assert!(
        errors[0]
            .to_string()
            .starts_with("h.conf:1: invalid connection type")
    );
    assert!(errors[1].message.contains("samerole is not supported"));
    assert!(errors[3].message.contains("host names"));
    assert!(errors[5].message.contains("not contiguous"));
    assert!(
        errors[6]
            .message
            .contains("unsupported authentication method \"any\"")
    );
}

#[test]
fn load_reads_at_file_lists_beside_the_hba_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("admins"),
        "alice, bob # the first two\n\"carol\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("dbs"), "app @more\n").unwrap();
    std::fs::write(dir.path().join("more"), "reports\n").unwrap();
    let hba = dir.path().join("hba.conf");
    std::fs::write(
        &hba,
        "host @dbs @admins 127.0.0.1/32 md5\nhost all @missing all md5\n",
    )
    .unwrap();
    let errors = load(&hba).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 2);
    assert!(
        errors[0].message.starts_with("@missing: cannot open"),
        "{}",
        errors[0].message
    );

    std::fs::write(&hba, "host @dbs @admins 127.0.0.1/32 md5\n").unwrap();
    let rules = load(&hba).unwrap();
    let literal = |n: &str| Name::Literal(n.to_owned());
    assert_eq!(
        rules[0].users,
        [literal("alice"), literal("bob"), literal("carol")]
    );
    assert_eq!(rules[0].databases, [literal("app"), literal("reports")]);
}

#[test]
fn a_map_belongs_to_peer_and_cert_rules_and_must_be_defined() {
    let err = parse("host all all all md5 map=ops\n", "hba.conf").unwrap_err();
    assert!(
        err[0].message.contains("only valid for peer and cert"),
        "{}",
        err[0].message
    );
    let rules = parse(
        "local all all peer map=ops\nhostssl all all all cert map=certs\nlocal all all peer\n",
        "hba.conf",
    )
    .unwrap();
    let maps = crate::config::ident::parse("ops alice app\n", "ident.conf").unwrap();
    let hba = Hba { rules, maps };
    assert_eq!(hba.undefined_maps(), [(2, "certs")]);
}
