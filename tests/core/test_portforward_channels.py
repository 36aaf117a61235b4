"""The port-forward channel protocol's pure parts: ports, subprotocols, the opening messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import portforward_channels as pc


def test_opening_messages_are_the_port_little_endian_on_data_then_error_channel():
    assert pc.opening_messages([8080, 9090]) == [b"\x00\x90\x1f", b"\x01\x90\x1f", b"\x02\x82\x23", b"\x03\x82\x23"]


@given(st.lists(st.integers(1, 65535), min_size=1, max_size=8))
def test_opening_messages_decode_as_the_python_client_reads_them(ports):
    messages = pc.opening_messages(ports)
    for index, port in enumerate(ports):
        for channel in (pc.data_channel(index), pc.error_channel(index)):
            frame = messages[channel]
            assert len(frame) == 3 and frame[0] == channel and frame[1] + frame[2] * 256 == port


def test_negotiation_takes_the_first_supported_offer_and_none_means_binary():
    assert pc.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert pc.negotiate([]) == ""
    assert pc.negotiate(["v4.base64.channel.k8s.io"]) is None


def test_api_ports_split_commas_and_repeat_as_kube_apiserver_converts():
    assert pc.api_ports(["80,8080", "9"]) == [80, 8080, 9]
    assert pc.api_ports(["0"]) == [0]  # the kubelet refuses it
    for bad, word in (("x", "invalid syntax"), ("", "invalid syntax"), ("+1", "invalid syntax"),
                      ("65536", "value out of range")):
        with pytest.raises(ValueError) as refused:
            pc.api_ports([bad])
        assert str(refused.value) == f'cannot convert to []int32: strconv.ParseUint: parsing "{bad}": {word}'


def test_agent_ports_are_checked_as_the_kubelet_checks_them():
    assert pc.agent_ports(["80,8080"]) == [80, 8080]
    cases = {(): 'query parameter "port" is required', ("",): 'query parameter "port" cannot be empty',
             ("80,0",): 'port "80,0" must be > 0',
             ("a",): 'unable to parse "a" as a port: strconv.ParseUint: parsing "a": invalid syntax'}
    for values, message in cases.items():
        with pytest.raises(ValueError) as refused:
            pc.agent_ports(values)
        assert str(refused.value) == message


def test_split_and_message_round_trip():
    assert pc.split(pc.message(4, b"abc")) == (4, b"abc")
    assert pc.split(b"") is None
