use super::*;
use std::os::unix::fs::PermissionsExt;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A cache in a fresh directory, an engine, and the smallest component there is.
fn setup() -> (tempfile::TempDir, CompileCache, Engine, Vec<u8>) {
    let temp = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(Some(temp.path().join("cache"))).unwrap();
    let engine = Engine::default();
    let wasm = wasm_encoder::Component::new().finish();
    (temp, cache, engine, wasm)
}

fn only_entry(cache: &CompileCache) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.dir().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

fn outcome(cache: &CompileCache, engine: &Engine, wasm: &[u8]) -> CacheOutcome {
    cache.load(engine, "sha256:package", wasm).unwrap().1
}

#[test]
fn hmac_matches_rfc_4231() {
    let cases: [(&[u8], &[u8], &str); 3] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        // A key longer than SHA-256's block is hashed first.
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (key, data, mac) in cases {
        assert_eq!(hex::encode(hmac_sha256(key, &[data])), mac);
        // Parts are concatenated.
        let (a, b) = data.split_at(3);
        assert_eq!(hex::encode(hmac_sha256(key, &[a, b])), mac);
    }
}

#[test]
fn a_new_cache_directory_and_key_are_private() {
    let (_temp, cache, engine, wasm) = setup();
    let dir = cache.dir().unwrap();
    let mode = std::fs::metadata(dir).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    let key = std::fs::symlink_metadata(dir.join(KEY_FILE)).unwrap();
    assert!(key.is_file());
    assert_eq!(key.mode() & 0o777, 0o600);
    assert_eq!(key.len(), KEY_LEN as u64);

    assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Miss);
    assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    // A second process finds the same key and the same entry good.
    let again = CompileCache::new(Some(dir.to_owned())).unwrap();
    assert_eq!(outcome(&again, &engine, &wasm), CacheOutcome::Hit);
}

/// What an attacker who can write the directory but not read the key can make: an entry
/// with a header recomputed by the public rules (magic, key, SHA-256 of the code). It is
/// refused for its MAC, rebuilt, and the rebuilt entry is good again.
#[test]
fn a_planted_entry_with_a_recomputed_header_is_rebuilt() {
    let (_temp, cache, engine, wasm) = setup();
    assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Miss);
    let entry = only_entry(&cache);
    let good = std::fs::read(&entry).unwrap();
    let (header, compiled) = good.split_at(HEADER_LEN);
    let mut planted_code = compiled.to_vec();
    let last = planted_code.len() - 1;
    planted_code[last] ^= 0x5a;

    let plain_digest = |magic: &[u8]| {
        let mut planted = magic.to_vec();
        planted.extend_from_slice(&header[MAGIC.len()..MAGIC.len() + 64]);
        planted.extend_from_slice(&Sha256::digest(&planted_code));
        planted.extend_from_slice(&planted_code);
        planted
    };
    for (planted, why) in [
        (plain_digest(MAGIC), "failed its MAC check"),
        (plain_digest(MAGIC_V1), "unauthenticated format"),
    ] {
        std::fs::write(&entry, planted).unwrap();
        match outcome(&cache, &engine, &wasm) {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains(why), "{reason}"),
            other => panic!("a planted entry was not rebuilt: {other:?}"),
        }
        assert_eq!(std::fs::read(&entry).unwrap(), good);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    // The entry of another user's cache (another key) is refused the same way.
    let other = tempfile::tempdir().unwrap();
    let other_cache = CompileCache::new(Some(other.path().to_owned())).unwrap();
    assert_eq!(outcome(&other_cache, &engine, &wasm), CacheOutcome::Miss);
    std::fs::copy(only_entry(&other_cache), &entry).unwrap();
    assert!(matches!(
        outcome(&cache, &engine, &wasm),
        CacheOutcome::Rebuilt(reason) if reason.contains("MAC")
    ));
}

#[test]
fn a_flipped_mac_byte_or_a_truncated_entry_is_rebuilt() {
    let (_temp, cache, engine, wasm) = setup();
    assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Miss);
    let entry = only_entry(&cache);
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    flipped[HEADER_LEN - 1] ^= 1;
    for bad in [flipped, good[..good.len() - 1].to_vec()] {
        std::fs::write(&entry, bad).unwrap();
        assert!(matches!(
            outcome(&cache, &engine, &wasm),
            CacheOutcome::Rebuilt(reason) if reason.contains("failed its MAC check")
        ));
    }
    std::fs::write(&entry, b"\0asm\x01\0\0\0").unwrap();
    assert!(matches!(
        outcome(&cache, &engine, &wasm),
        CacheOutcome::Rebuilt(reason) if reason.contains("not a Cordon cache entry")
    ));
}

/// A link in place of an entry is not followed, even to a valid entry: the link's target
/// could change between check and load, or be a file the attacker controls.
#[test]
fn a_symlinked_entry_is_refused() {
    let (temp, cache, engine, wasm) = setup();
    assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Miss);
    let entry = only_entry(&cache);
    let elsewhere = temp.path().join("valid.cwasm");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    match outcome(&cache, &engine, &wasm) {
        CacheOutcome::Rebuilt(reason) => {
            assert!(reason.contains("symbolic link"), "{reason}")
        }
        other => panic!("a linked entry was used: {other:?}"),
    }
    // Replaced by a regular file of its own.
    assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
}

#[test]
fn a_directory_others_can_write_is_an_error_naming_it() {
    let temp = tempfile::tempdir().unwrap();
    for (mode, who) in [
        (0o777, "its group and others"),
        (0o770, "its group"),
        (0o703, "others"),
    ] {
        set_mode(temp.path(), mode);
        let error = CompileCache::new(Some(temp.path().to_owned()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&temp.path().display().to_string())
                && error.contains(&format!("mode {mode:04o} lets {who} write")),
            "{error}"
        );
    }
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
    // Group or others may read it, as long as the key is theirs alone.
    set_mode(temp.path(), 0o755);
    assert!(CompileCache::new(Some(temp.path().to_owned())).is_ok());
}

#[test]
fn the_ownership_rule_refuses_another_users_directory() {
    let dir = Path::new("/shared/cache");
    let facts = |owner, mode| DirFacts {
        is_dir: true,
        owner,
        mode,
    };
    assert!(check_dir(dir, facts(1000, 0o700), 1000).is_ok());
    let error = check_dir(dir, facts(65534, 0o700), 1000).unwrap_err();
    assert_eq!(
        error.to_string().split(';').next().unwrap(),
        "compile cache /shared/cache: owned by uid 65534, not by this user (uid 1000)"
    );
    // Root is no exception: the owner could have root run their code.
    assert!(check_dir(dir, facts(1000, 0o700), 0).is_err());
    assert!(check_dir(dir, facts(1000, 0o1777), 1000).is_err());
    let file = DirFacts {
        is_dir: false,
        ..facts(1000, 0o700)
    };
    assert!(matches!(
        check_dir(dir, file, 1000),
        Err(CacheDirError::NotADirectory { .. })
    ));
}

/// The same rule on a real directory of another user: as root, a directory given to
/// `nobody`; otherwise `/`, which belongs to root. Both are checked, neither skipped.
#[test]
fn a_real_directory_of_another_user_is_an_error_naming_it() {
    let temp = tempfile::tempdir().unwrap();
    let (dir, owner) = if effective_uid() == 0 {
        std::os::unix::fs::chown(temp.path(), Some(65534), None).unwrap();
        (temp.path().to_owned(), 65534)
    } else {
        (PathBuf::from("/"), std::fs::metadata("/").unwrap().uid())
    };
    assert_ne!(owner, effective_uid());
    let error = CompileCache::new(Some(dir.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&format!(
            "compile cache {}: owned by uid {owner}, not by this user",
            dir.display()
        )),
        "{error}"
    );
}

#[test]
fn a_key_file_others_can_read_or_of_the_wrong_size_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    CompileCache::new(Some(temp.path().to_owned())).unwrap();
    let key = temp.path().join(KEY_FILE);
    let refused = |expected: &str| {
        let error = CompileCache::new(Some(temp.path().to_owned()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&format!("compile cache key {}", key.display()))
                && error.contains(expected),
            "{error}"
        );
    };
    set_mode(&key, 0o644);
    refused("mode 0644 lets others read or change it");
    set_mode(&key, 0o600);
    std::fs::write(&key, [0u8; 31]).unwrap();
    refused("not a key of 32 bytes");
    std::fs::write(&key, [0u8; 33]).unwrap();
    refused("longer than 32 bytes");
    // A link in its place is not followed, even to a good key.
    std::fs::remove_file(&key).unwrap();
    let elsewhere = temp.path().join("elsewhere");
    std::fs::write(&elsewhere, [7u8; 32]).unwrap();
    set_mode(&elsewhere, 0o600);
    std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
    refused("symbolic link");
}
