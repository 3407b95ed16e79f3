"""IceLiteAgent: answering checks, nomination, consent, role conflicts, restarts."""

from __future__ import annotations

import hashlib
import hmac
import zlib

import pytest

from realtime.errors import DecodeError, LocalProtocolError
from realtime.ice.lite import (
    CandidatePairNominated,
    CandidatePairRemoved,
    CandidatePairValidated,
    ConsentExpired,
    IceLiteAgent,
    SelectedPairChanged,
)
from realtime.stun.attributes import (
    ErrorCode,
    MessageIntegrity,
    RawAttribute,
    UnknownAttributes,
    UseCandidate,
    XorMappedAddress,
)
from realtime.stun.message import (
    StunClass,
    StunMessage,
    StunMethod,
    check_fingerprint,
    check_message_integrity,
)
from tests.ice.checks import (
    ADDR,
    ADDR6,
    LOCAL_PWD,
    LOCAL_UFRAG,
    PEER_TIEBREAKER,
    REMOTE_UFRAG,
    TIEBREAKER,
    check,
)

KEY = LOCAL_PWD.encode()


def make_agent(**kwargs) -> IceLiteAgent:
    kwargs.setdefault("remote_ufrag", REMOTE_UFRAG)
    kwargs.setdefault("tiebreaker", TIEBREAKER)
    return IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD, **kwargs)


def events(agent: IceLiteAgent) -> list:
    found = []
    while (event := agent.next_event()) is not None:
        found.append(event)
    return found


def error_code(response: bytes) -> int:
    message = StunMessage.decode(response)
    assert message.message_class == StunClass.ERROR
    return message.find(ErrorCode).code


# -- the success response ------------------------------------------------------


def test_success_response_bytes():
    """The answer to a check, field by field (RFC 8489 §5, §14.2, §14.5, §14.7)."""
    response = make_agent().receive_stun(check(), ADDR, 0.0)
    header = bytes.fromhex(
        "0101"  # Binding success response
        "002c"  # length 44 = 12 (XOR-MAPPED-ADDRESS) + 24 (MI) + 8 (FINGERPRINT)
        "2112a442"  # magic cookie
    ) + b"transaction1"  # the request's transaction id, echoed
    xor_mapped = bytes.fromhex(
        "0020"  # XOR-MAPPED-ADDRESS
        "0008"  # length
        "00"  # reserved
        "01"  # family IPv4
        "f523"  # port 54321 (0xd431) ^ 0x2112
        "e112a648"  # 192.0.2.10 (c000020a) ^ 0x2112a442
    )
    assert response[:32] == header + xor_mapped
    # MESSAGE-INTEGRITY: HMAC-SHA1 keyed with our ice-pwd over the message so
    # far, with the length as if MI were last (20 + 12 + 24 - 20 = 36 = 0x24).
    signed = b"\x01\x01\x00\x24" + response[4:32]
    assert response[32:36] == bytes.fromhex("00080014")
    assert response[36:56] == hmac.new(KEY, signed, hashlib.sha1).digest()
    # FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554e.
    assert response[56:60] == bytes.fromhex("80280004")
    crc = zlib.crc32(response[:56]) ^ 0x5354554E
    assert response[60:] == crc.to_bytes(4, "big")
    assert len(response) == 64


def test_success_response_ipv6_and_scope_id():
    agent = make_agent()
    response = agent.receive_stun(check(), ("fe80::1%eth0", 4000, 0, 2), 0.0)
    mapped = StunMessage.decode(response).find(XorMappedAddress)
    assert (mapped.family, mapped.address, mapped.port) == (2, "fe80::1", 4000)
    response = agent.receive_stun(check(), ADDR6, 0.0)
    mapped = StunMessage.decode(response).find(XorMappedAddress)
    assert (mapped.family, mapped.address, mapped.port) == (2, ADDR6[0], ADDR6[1])
    assert check_message_integrity(response, KEY) and check_fingerprint(response)


def test_capture_check_from_a_real_agent(vectors):
    """A check recorded from a real browser/agent pair is accepted and answered."""
    capture = vectors("stun_ice_capture")
    credentials = capture["ice_credentials"]
    example = next(e for e in capture["examples"] if e["where"] == "direct")
    receiver = credentials[example["key_is_ice_pwd_of"]]
    sender = credentials["offerer" if example["key_is_ice_pwd_of"] == "answerer" else "answerer"]
    assert example["username"] == f"{receiver['ice-ufrag']}:{sender['ice-ufrag']}"
    agent = IceLiteAgent(
        receiver["ice-ufrag"],
        receiver["ice-pwd"],
        remote_ufrag=sender["ice-ufrag"],
        tiebreaker=0,
    )
    request = bytes.fromhex(example["hex"])
    response = agent.receive_stun(request, ADDR, 1.0)
    message = StunMessage.decode(response)
    assert message.message_class == StunClass.SUCCESS
    assert message.transaction_id == StunMessage.decode(request).transaction_id
    assert check_message_integrity(response, receiver["ice-pwd"].encode())
    # This capture's check carries USE-CANDIDATE: validated and nominated at once.
    assert events(agent) == [
        CandidatePairValidated(ADDR),
        CandidatePairNominated(ADDR),
        SelectedPairChanged(ADDR),
    ]


# -- rejected checks: one row per outcome --------------------------------------

REJECTED = [
    # (id, request, expected error code or None for a silent drop)
    ("no fingerprint", check(fingerprint=False), None),
    ("bad fingerprint", check()[:-1] + bytes([check()[-1] ^ 1]), None),
    ("no username", check(username=None), 400),
    ("no message-integrity", check(key=None), 400),
    ("wrong local ufrag", check(username=f"nope:{REMOTE_UFRAG}"), 401),
    ("wrong remote ufrag", check(username=f"{LOCAL_UFRAG}:other"), 401),
    ("username without colon", check(username=LOCAL_UFRAG), 401),
    ("username with empty remote", check(username=f"{LOCAL_UFRAG}:"), 401),
    ("wrong password", check(key=b"not-the-password-at-all"), 401),
    ("unknown required attribute", check(extra=(RawAttribute(0x7F01, b"abcd"),)), 420),
    ("malformed known attribute", check(extra=(RawAttribute(0x0024, b"ab"),)), 400),
]


@pytest.mark.parametrize(
    "request_bytes, expected", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejected_checks(request_bytes, expected):
    agent = make_agent()
    response = agent.receive_stun(request_bytes, ADDR, 0.0)
    if expected is None:
        assert response is None
    else:
        assert error_code(response) == expected
        assert check_fingerprint(response)
        assert StunMessage.decode(response).transaction_id == b"transaction1"
    assert events(agent) == []
    assert agent.valid_addresses == frozenset()
    assert agent.get_timer() is None


def test_unauthenticated_errors_are_not_keyed_and_authenticated_ones_are():
    agent = make_agent()
    for request in (check(username=None), check(key=b"wrong-password-wrong-pw")):
        assert StunMessage.decode(agent.receive_stun(request, ADDR, 0.0)).find(
            MessageIntegrity
        ) is None
    response = agent.receive_stun(check(extra=(RawAttribute(0x7F01, b""),)), ADDR, 0.0)
    assert check_message_integrity(response, KEY)
    assert StunMessage.decode(response).find(UnknownAttributes).types == (0x7F01,)


def test_unknown_comprehension_optional_attribute_is_ignored():
    response = make_agent().receive_stun(
        check(extra=(RawAttribute(0xC057, b"\x00\x01\x00\x32"),)), ADDR, 0.0
    )
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS


def test_any_remote_ufrag_accepted_until_known():
    agent = make_agent(remote_ufrag=None)
    response = agent.receive_stun(check(username=f"{LOCAL_UFRAG}:whatever"), ADDR, 0.0)
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    agent.set_remote_credentials(REMOTE_UFRAG, "x" * 22)
    assert agent.remote_ufrag == REMOTE_UFRAG
    other = agent.receive_stun(check(username=f"{LOCAL_UFRAG}:whatever"), ADDR, 1.0)
    assert error_code(other) == 401


@pytest.mark.parametrize(
    "method, message_class",
    [
        (StunMethod.BINDING, StunClass.INDICATION),  # RFC 8445 §11 keepalive
        (StunMethod.BINDING, StunClass.SUCCESS),
        (StunMethod.BINDING, StunClass.ERROR),
        (StunMethod.ALLOCATE, StunClass.REQUEST),
    ],
)
def test_non_binding_requests_get_no_answer(method, message_class):
    agent = make_agent()
    assert agent.receive_stun(check(method=method, message_class=message_class), ADDR, 0) is None
    assert events(agent) == []


def test_garbage_raises_decode_error():
    with pytest.raises(DecodeError):
        make_agent().receive_stun(b"\x00\x01\x00", ADDR, 0.0)


def test_use_candidate_after_message_integrity_is_ignored():
    """RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are not protected."""
    signed = check(fingerprint=False)
    # Append USE-CANDIDATE after MI, fix the length, then add a valid FINGERPRINT.
    body = signed[20:] + bytes.fromhex("00250000")
    unsigned = signed[:2] + (len(body) + 8).to_bytes(2, "big") + signed[4:20] + body
    crc = zlib.crc32(unsigned) ^ 0x5354554E
    request = unsigned + bytes.fromhex("80280004") + crc.to_bytes(4, "big")
    assert StunMessage.decode(request).find(UseCandidate) is not None
    agent = make_agent()
    response = agent.receive_stun(request, ADDR, 0.0)
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    assert events(agent) == [CandidatePairValidated(ADDR)]
    assert agent.selected_address is None


# -- nomination ------------------------------------------------------------------


def test_validation_then_nomination_by_use_candidate():
    agent = make_agent()
    agent.receive_stun(check(), ADDR, 0.0)
    assert events(agent) == [CandidatePairValidated(ADDR)]
    assert agent.is_valid(ADDR) and agent.selected_address is None
    agent.receive_stun(check(use_candidate=True), ADDR, 0.5)
    assert events(agent) == [CandidatePairNominated(ADDR), SelectedPairChanged(ADDR)]
    assert agent.selected_address == ADDR
    agent.receive_stun(check(use_candidate=True), ADDR, 1.0)  # repeated: no new events
    assert events(agent) == []


def test_nomination_by_dtls_before_use_candidate():
    """Chrome's ClientHello arrives before USE-CANDIDATE (docs/design.md §5)."""
    agent = make_agent()
    agent.notice_dtls(ADDR, 0.0)  # not a valid pair yet: ignored
    assert events(agent) == []
    agent.receive_stun(check(), ADDR, 0.1)
    agent.notice_dtls(ADDR, 0.2)
    assert events(agent) == [
        CandidatePairValidated(ADDR),
        CandidatePairNominated(ADDR),
        SelectedPairChanged(ADDR),
    ]
    agent.receive_stun(check(use_candidate=True), ADDR, 0.3)  # the late USE-CANDIDATE
    assert events(agent) == []
    assert agent.selected_address == ADDR


def test_dtls_does_not_move_a_selection_but_use_candidate_does():
    agent = make_agent()
    agent.receive_stun(check(use_candidate=True), ADDR, 0.0)
    agent.receive_stun(check(), ADDR6, 0.1)
    events(agent)
    agent.notice_dtls(ADDR6, 0.2)
    assert events(agent) == [] and agent.selected_address == ADDR
    agent.receive_stun(check(use_candidate=True), ADDR6, 0.3)
    assert events(agent) == [CandidatePairNominated(ADDR6), SelectedPairChanged(ADDR6)]
    agent.receive_stun(check(use_candidate=True), ADDR, 0.4)  # renomination back
    assert events(agent) == [SelectedPairChanged(ADDR)]


# -- consent freshness (RFC 7675) --------------------------------------------------


def test_consent_expires_without_checks():
    agent = make_agent()
    agent.receive_stun(check(use_candidate=True), ADDR, 10.0)
    events(agent)
    assert agent.get_timer() == 40.0
    agent.handle_timer(39.999)
    assert events(agent) == []
    agent.receive_stun(check(), ADDR, 35.0)  # a consent check refreshes
    assert agent.get_timer() == 65.0
    agent.notice_traffic(ADDR, 60.0)  # media does not
    agent.handle_timer(agent.get_timer())
    assert events(agent) == [
        CandidatePairRemoved(ADDR),
        ConsentExpired(ADDR),
        SelectedPairChanged(None),
    ]
    assert agent.selected_address is None and agent.get_timer() is None


def test_unselected_pair_expiry_keeps_consent():
    agent = make_agent(consent_timeout=5.0)
    agent.receive_stun(check(), ADDR6, 0.0)
    agent.receive_stun(check(use_candidate=True), ADDR, 3.0)
    events(agent)
    assert agent.get_timer() == 5.0
    agent.handle_timer(5.0)
    assert events(agent) == [CandidatePairRemoved(ADDR6)]
    assert agent.selected_address == ADDR and agent.get_timer() == 8.0


def test_failed_checks_do_not_refresh_consent():
    agent = make_agent()
    agent.receive_stun(check(), ADDR, 0.0)
    agent.receive_stun(check(key=b"wrong-password-wrong-pw"), ADDR, 20.0)
    assert agent.get_timer() == 30.0


# -- role conflicts (RFC 8445 §7.3.1.1) --------------------------------------------


def test_controlling_peer_with_lower_tiebreaker_is_no_conflict():
    """We are controlled; ICE-CONTROLLING from the peer is what we expect."""
    agent = make_agent()
    response = agent.receive_stun(check(controlling=1), ADDR, 0.0)
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    assert agent.controlling is False


def test_controlled_peer_with_lower_tiebreaker_makes_us_controlling():
    agent = make_agent()
    response = agent.receive_stun(
        check(controlling=None, controlled=TIEBREAKER - 1, use_candidate=True), ADDR, 0.0
    )
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    assert agent.controlling is True
    # As controlling agent, a USE-CANDIDATE from the peer nominates nothing.
    assert events(agent) == [CandidatePairValidated(ADDR)]


def test_controlled_peer_with_higher_tiebreaker_gets_487():
    agent = make_agent()
    response = agent.receive_stun(check(controlling=None, controlled=TIEBREAKER + 1), ADDR, 0.0)
    assert error_code(response) == 487
    assert check_message_integrity(response, KEY)
    assert agent.controlling is False and events(agent) == []


@pytest.mark.parametrize(
    "peer_tiebreaker, expected_code, expected_controlling",
    [
        (TIEBREAKER, 487, True),  # equal: we keep control (">=")
        (TIEBREAKER - 1, 487, True),
        (TIEBREAKER + 1, None, False),  # the peer wins: we switch to controlled
    ],
)
def test_controlling_agent_meets_controlling_peer(
    peer_tiebreaker, expected_code, expected_controlling
):
    agent = make_agent(controlling=True)
    response = agent.receive_stun(check(controlling=peer_tiebreaker), ADDR, 0.0)
    if expected_code is None:
        assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    else:
        assert error_code(response) == expected_code
    assert agent.controlling is expected_controlling


def test_no_role_attribute_is_no_conflict():
    agent = make_agent()
    response = agent.receive_stun(check(controlling=None), ADDR, 0.0)
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS


# -- bounded state, restart --------------------------------------------------------


def test_oldest_unselected_pair_is_evicted():
    agent = make_agent(max_pairs=3)
    agent.receive_stun(check(use_candidate=True), ("198.51.100.1", 1), 0.0)  # selected
    agent.receive_stun(check(), ("198.51.100.2", 2), 1.0)
    agent.receive_stun(check(), ("198.51.100.3", 3), 2.0)
    agent.notice_traffic(("198.51.100.2", 2), 3.0)  # .3 is now the least recently active
    events(agent)
    agent.receive_stun(check(), ("198.51.100.4", 4), 4.0)
    assert events(agent) == [
        CandidatePairRemoved(("198.51.100.3", 3)),
        CandidatePairValidated(("198.51.100.4", 4)),
    ]
    assert len(agent.valid_addresses) == 3
    assert agent.selected_address == ("198.51.100.1", 1)


def test_restart_keeps_media_until_new_nomination():
    agent = make_agent()
    agent.receive_stun(check(use_candidate=True), ADDR, 0.0)
    events(agent)
    agent.restart("srvB", "newserverpassword0123456", "brw2", "newbrowserpassword012345")
    assert (agent.local_ufrag, agent.local_pwd, agent.remote_ufrag) == (
        "srvB",
        "newserverpassword0123456",
        "brw2",
    )
    assert agent.selected_address == ADDR
    # An old-credential consent check still in flight is answered with the old key.
    old = agent.receive_stun(check(), ADDR, 1.0)
    assert check_message_integrity(old, KEY)
    new_check = check(
        username="srvB:brw2", key=b"newserverpassword0123456", use_candidate=True
    )
    new = agent.receive_stun(new_check, ADDR6, 2.0)
    assert check_message_integrity(new, b"newserverpassword0123456")
    assert events(agent) == [
        CandidatePairValidated(ADDR6),
        CandidatePairNominated(ADDR6),
        SelectedPairChanged(ADDR6),
    ]
    # Once the new credentials worked, the old ones are gone.
    assert error_code(agent.receive_stun(check(), ADDR, 3.0)) == 401


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"local_ufrag": "abc"}, "ice-ufrag 'abc' is not 4..256 ice-chars"),
        ({"local_ufrag": "ab:cd"}, "ice-ufrag 'ab:cd' is not 4..256 ice-chars"),
        ({"local_pwd": "short"}, "ice-pwd is not 22..256 ice-chars"),
        ({"tiebreaker": -1}, "tiebreaker -1 is not a 64-bit unsigned value"),
        ({"tiebreaker": 1 << 64}, f"tiebreaker {1 << 64} is not a 64-bit unsigned value"),
        ({"max_pairs": 1}, "max_pairs 1 is below 2"),
    ],
)
def test_bad_configuration(kwargs, message):
    arguments = {"local_ufrag": LOCAL_UFRAG, "local_pwd": LOCAL_PWD, "tiebreaker": 1}
    arguments.update(kwargs)
    with pytest.raises(LocalProtocolError) as raised:
        IceLiteAgent(arguments.pop("local_ufrag"), arguments.pop("local_pwd"), **arguments)
    assert str(raised.value) == message


def test_peer_tiebreaker_constant_is_higher_than_ours():
    assert PEER_TIEBREAKER > TIEBREAKER  # the role tests above rely on it


def test_authenticated_media_is_proof_of_life():
    """Issue 9, defect 2: SRTP/SRTCP/DTLS that decrypted refreshes consent; silence still ends it."""
    agent = make_agent()
    agent.receive_stun(check(use_candidate=True), ADDR, 10.0)
    events(agent)
    for now in range(11, 100):
        agent.notice_authenticated(ADDR, float(now))
        if agent.get_timer() <= now:
            agent.handle_timer(float(now))
    assert events(agent) == [] and agent.selected_address == ADDR
    agent.handle_timer(agent.get_timer())  # the stale deadline moves to 99 + 30
    assert events(agent) == [] and agent.get_timer() == 129.0
    agent.handle_timer(129.0)
    assert events(agent) == [CandidatePairRemoved(ADDR), ConsentExpired(ADDR),
                             SelectedPairChanged(None)]


def test_proof_of_life_from_an_unknown_address_changes_nothing():
    agent = make_agent()
    agent.receive_stun(check(use_candidate=True), ADDR, 0.0)
    events(agent)
    agent.notice_authenticated(("203.0.113.9", 9), 20.0)
    agent.handle_timer(30.0)
    assert ConsentExpired(ADDR) in events(agent)
