use std::collections::HashSet;

use super::*;
use crate::identity::Keypair;
use crate::wire::membership::{Credential, Role};

const NOW: UnixMillis = UnixMillis(1_000);

fn key(seed: u8) -> Keypair {
    Keypair::from_seed(&[seed; 32])
}

fn acme() -> NetworkId {
    "acme".parse().expect("network id")
}

fn credential(subject: &Keypair, role: Role, expires: Option<u64>) -> Credential {
    Credential {
        network: "acme".into(),
        subject: subject.public(),
        role,
        issued: UnixMillis(1),
        expires: expires.map(UnixMillis),
        serial: 1,
    }
}

fn with_admin(admin: &Keypair) -> Membership {
    let authority = Authority::new(vec![admin.public()], 1).expect("authority");
    Membership::private(&acme(), [], Some(authority))
}

fn revocations(admin: &Keypair, seq: u64, revoked: &[&Keypair]) -> Vec<u8> {
    Revocations {
        network: "acme".into(),
        seq,
        issued: UnixMillis(2),
        revoked: revoked.iter().map(|k| k.public()).collect(),
    }
    .sign(&[admin])
}

#[test]
fn membership_admits_and_reloads() {
    let a = key(1).public();
    let b = key(2).public();
    assert!(Membership::public().admits(&a, NOW).is_admitted());
    let m = Membership::private(&acme(), [a], None);
    assert!(m.admits(&a, NOW).is_admitted());
    assert_eq!(
        m.admits(&b, NOW),
        Admission::Refused(Refusal::NotAllowlisted)
    );
    let removed = m.replace_allowlist([b]);
    assert_eq!(removed, vec![a]);
    assert_eq!(m.still_admits(&a, NOW), Err(Refusal::NotAllowlisted));
    assert!(m.still_admits(&b, NOW).is_ok());
    assert_eq!(m.stream_refusals().get(Refusal::NotAllowlisted), 1);
    assert_eq!(m.refusals().total(), 0);
    // A public network has no list to replace.
    assert!(Membership::public().replace_allowlist([a]).is_empty());
}

#[test]
fn credentials_admit_by_the_admin_keys_alone() {
    let (admin, member, other_admin) = (key(1), key(2), key(3));
    let m = with_admin(&admin);
    let good = credential(&member, Role::Member, None).sign(&[&admin]);
    assert_eq!(m.admit_handshake(&member.public(), &[&good], NOW), Ok(()));
    assert!(m.still_admits(&member.public(), NOW).is_ok());

    let outsider = key(9);
    let refused = |k: &Keypair, chain: &[&[u8]]| m.admit_handshake(&k.public(), chain, NOW);
    // No credential.
    assert_eq!(refused(&outsider, &[]), Err(Refusal::NotAllowlisted));
    // Another network's admin.
    let foreign = credential(&outsider, Role::Member, None).sign(&[&other_admin]);
    assert_eq!(
        refused(&outsider, &[&foreign]),
        Err(Refusal::UntrustedIssuer)
    );
    // Someone else's credential.
    assert_eq!(refused(&outsider, &[&good]), Err(Refusal::BadCredential));
    // Forged: a byte of the signature changed.
    let mut forged = credential(&outsider, Role::Member, None).sign(&[&admin]);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(refused(&outsider, &[&forged]), Err(Refusal::BadCredential));
    // Expired.
    let expired = credential(&outsider, Role::Member, Some(NOW.0)).sign(&[&admin]);
    assert_eq!(
        refused(&outsider, &[&expired]),
        Err(Refusal::CredentialExpired)
    );
    // Another network's name, signed by our admin.
    let mut elsewhere = credential(&outsider, Role::Member, None);
    elsewhere.network = "other".into();
    let elsewhere = elsewhere.sign(&[&admin]);
    assert_eq!(
        refused(&outsider, &[&elsewhere]),
        Err(Refusal::BadCredential)
    );
    let counted: u64 = m.refusals().total();
    assert_eq!(counted, 6);
    assert!(!m.admits(&outsider.public(), NOW).is_admitted());
}

#[test]
fn a_threshold_needs_that_many_admins() {
    let (a, b, member) = (key(1), key(2), key(5));
    let authority = Authority::new(vec![a.public(), b.public()], 2).expect("authority");
    let m = Membership::private(&acme(), [], Some(authority));
    let one = credential(&member, Role::Member, None).sign(&[&a]);
    assert_eq!(
        m.admit_handshake(&member.public(), &[&one], NOW),
        Err(Refusal::UntrustedIssuer)
    );
    let both = credential(&member, Role::Member, None).sign(&[&a, &b]);
    assert_eq!(m.admit_handshake(&member.public(), &[&both], NOW), Ok(()));
    assert!(Authority::new(vec![a.public()], 2).is_err());
}

#[test]
fn devices_are_admitted_through_their_gateway_only() {
    let (admin, gateway, member, device) = (key(1), key(2), key(3), key(4));
    let m = with_admin(&admin);
    let gw_cred = credential(&gateway, Role::Gateway, Some(50_000)).sign(&[&admin]);
    let dev_cred = credential(&device, Role::Device, None).sign(&[&gateway]);
    assert_eq!(
        m.admit_handshake(&device.public(), &[&dev_cred, &gw_cred], NOW),
        Ok(())
    );
    // The gateway's expiry bounds its device's admission.
    assert_eq!(
        m.admits(&device.public(), NOW),
        Admission::Admitted {
            until: Some(UnixMillis(50_000))
        }
    );
    assert_eq!(
        m.admits(&device.public(), UnixMillis(50_000)),
        Admission::Refused(Refusal::CredentialExpired)
    );
    // A member (not a gateway) cannot admit devices.
    let member_cred = credential(&member, Role::Member, None).sign(&[&admin]);
    let by_member = credential(&device, Role::Device, None).sign(&[&member]);
    assert_eq!(
        m.admit_handshake(&device.public(), &[&by_member, &member_cred], NOW),
        Err(Refusal::UntrustedIssuer)
    );
    // Nor can a gateway with no proof of its own membership.
    assert_eq!(
        m.admit_handshake(&device.public(), &[&dev_cred], NOW),
        Err(Refusal::UntrustedIssuer)
    );
    // An allowlisted gateway admits its devices without a credential.
    let listed = Membership::private(&acme(), [gateway.public()], None);
    assert_eq!(
        listed.admit_handshake(&device.public(), &[&dev_cred], NOW),
        Ok(())
    );
    assert_eq!(
        listed.replace_allowlist([]).len(),
        2,
        "the gateway and its device"
    );
    assert!(!listed.admits(&device.public(), NOW).is_admitted());
}

#[test]
fn revocation_lists_apply_newest_first_and_take_devices_along() {
    let (admin, gateway, device, reader) = (key(1), key(2), key(3), key(4));
    let m = with_admin(&admin);
    let mut removals = m.removals();
    let gw_cred = credential(&gateway, Role::Gateway, None).sign(&[&admin]);
    let dev_cred = credential(&device, Role::Device, None).sign(&[&gateway]);
    let rd_cred = credential(&reader, Role::Member, None).sign(&[&admin]);
    for (k, chain) in [
        (&gateway, vec![&gw_cred[..]]),
        (&device, vec![&dev_cred[..], &gw_cred[..]]),
        (&reader, vec![&rd_cred[..]]),
    ] {
        assert_eq!(m.admit_handshake(&k.public(), &chain, NOW), Ok(()));
    }

    let newly = m
        .apply_revocations(&revocations(&admin, 1, &[&gateway, &reader]))
        .expect("applied");
    let newly: HashSet<PublicKey> = newly.into_iter().collect();
    let expected: HashSet<PublicKey> = [&gateway, &device, &reader]
        .iter()
        .map(|k| k.public())
        .collect();
    assert_eq!(newly, expected);
    assert_eq!(removals.try_recv().map(|v| v.len()).ok(), Some(3));
    for k in [&gateway, &device, &reader] {
        assert_eq!(
            m.admits(&k.public(), NOW),
            Admission::Refused(Refusal::Revoked)
        );
    }
    // Their credentials no longer get them in, devices included.
    assert_eq!(
        m.admit_handshake(&device.public(), &[&dev_cred, &gw_cred], NOW),
        Err(Refusal::Revoked)
    );
    assert_eq!(m.revocation_seq(), 1);

    // Older or equal lists, other admins and other networks change nothing.
    assert!(matches!(
        m.apply_revocations(&revocations(&admin, 1, &[])),
        Err(RevocationError::NotNewer { got: 1, held: 1 })
    ));
    assert!(matches!(
        m.apply_revocations(&revocations(&key(7), 9, &[])),
        Err(RevocationError::Untrusted)
    ));
    assert!(matches!(
        Membership::private(&"other".parse().expect("id"), [], None)
            .apply_revocations(&revocations(&admin, 2, &[])),
        Err(RevocationError::WrongNetwork(_))
    ));
    assert_eq!(m.revocation_seq(), 1);
}

#[test]
fn the_kept_list_is_applied_at_start() {
    let dir = std::env::temp_dir().join(format!("sb-revocations-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("revocations.cose");
    let _ = std::fs::remove_file(&path);
    let (admin, reader) = (key(1), key(4));
    let m = with_admin(&admin)
        .keep_revocations_in(path.clone())
        .expect("no file yet");
    m.apply_revocations(&revocations(&admin, 4, &[&reader]))
        .expect("applied");
    let again = with_admin(&admin)
        .keep_revocations_in(path.clone())
        .expect("loads");
    assert_eq!(again.revocation_seq(), 4);
    assert_eq!(
        again.admits(&reader.public(), NOW),
        Admission::Refused(Refusal::Revoked)
    );
    // A damaged file is an error, not a start without the list.
    let _ = std::fs::write(&path, b"junk");
    assert!(with_admin(&admin).keep_revocations_in(path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rotating admin keys: members re-issued by the new admin keep their
/// admission when the old one goes; those only the old one signed leave.
#[test]
fn admin_keys_rotate_without_dropping_reissued_members() {
    let (old, new, a, b) = (key(1), key(2), key(3), key(4));
    let m = with_admin(&old);
    let a_old = credential(&a, Role::Member, None).sign(&[&old]);
    let b_old = credential(&b, Role::Member, None).sign(&[&old]);
    assert_eq!(m.admit_handshake(&a.public(), &[&a_old], NOW), Ok(()));
    assert_eq!(m.admit_handshake(&b.public(), &[&b_old], NOW), Ok(()));
    // Both admins for a while: nobody leaves.
    let both = Authority::new(vec![old.public(), new.public()], 1).expect("authority");
    assert!(m.replace_authority(Some(both)).is_empty());
    // `a` reconnects with a credential from the new admin.
    let a_new = credential(&a, Role::Member, None).sign(&[&new]);
    assert_eq!(m.admit_handshake(&a.public(), &[&a_new], NOW), Ok(()));
    // The old admin goes: only `b` (signed by it alone) leaves.
    let only_new = Authority::new(vec![new.public()], 1).expect("authority");
    assert_eq!(m.replace_authority(Some(only_new)), vec![b.public()]);
    assert!(m.admits(&a.public(), NOW).is_admitted());
    assert!(!m.admits(&b.public(), NOW).is_admitted());
}

#[test]
fn every_refusal_has_its_own_label() {
    let labels: HashSet<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), Refusal::ALL.len());
    let counts = Refusals::default();
    counts.count(Refusal::DeviceNameUnproven);
    assert_eq!(counts.snapshot().last(), Some(&("device_name_unproven", 1)));
}
