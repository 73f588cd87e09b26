"""An aiortc WHIP publisher and an aiortc WHEP player, both with bundlePolicy max-bundle,
against a running Ketang server. Prints one JSON line of figures; the Rust test
(tests/aiortc_interop.rs) judges them.

Usage: whip_whep.py BASE_URL ROOM PUBLISH_TOKEN PLAY_TOKEN SECONDS
"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

import aioice.ice
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

# The server listens on loopback in the test; aioice leaves 127.0.0.1 out of its host
# candidates, so a machine without another interface would have none to check from.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def post_offer(url: str, token: str, sdp: str) -> tuple[str, str]:
    req = urllib.request.Request(
        url,
        data=sdp.encode(),
        method="POST",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode(), resp.headers.get("Location", "")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"POST {url}: HTTP {e.code}: {e.read().decode(errors='replace')}")


def delete(base: str, location: str) -> None:
    if not location:
        return
    url = location if location.startswith("http") else base + location
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)
    except Exception:  # the figures are printed already; cleanup is best effort
        pass


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def connected_within(pc: RTCPeerConnection, started: float, limit: float) -> float | None:
    """Seconds from `started` until the connection state is `connected`, None if not in time."""
    deadline = started + limit
    while time.monotonic() < deadline:
        if pc.connectionState == "connected":
            return time.monotonic() - started
        if pc.connectionState in ("failed", "closed"):
            return None
        await asyncio.sleep(0.02)
    return None


async def negotiate(pc: RTCPeerConnection, url: str, token: str) -> tuple[str, str]:
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)  # gathers every candidate: no trickle
    answer, location = await asyncio.to_thread(post_offer, url, token, pc.localDescription.sdp)
    # On stderr for the failure message of the Rust test.
    print(f"--- offer to {url}\n{pc.localDescription.sdp}\n--- answer\n{answer}", file=sys.stderr)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer, location


async def main() -> None:
    base, room, pub_token, play_token, seconds = sys.argv[1:6]
    seconds = float(seconds)
    figures: dict = {}

    publisher = new_pc()
    publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
    publisher.addTransceiver(VideoStreamTrack(), direction="sendonly")
    started = time.monotonic()
    answer, pub_location = await negotiate(publisher, f"{base}/whip/{room}", pub_token)
    figures["whipAnswerCandidateLines"] = answer.count("a=candidate:")
    figures["whipAnswerEndOfCandidates"] = answer.count("a=end-of-candidates")
    figures["whipConnectedS"] = await connected_within(publisher, started, 5.0)

    player = new_pc()
    player.addTransceiver("audio", direction="recvonly")
    player.addTransceiver("video", direction="recvonly")
    counts = {"audioFrames": 0, "videoFrames": 0, "videoHeight": 0}
    consumers = []

    @player.on("track")
    def on_track(track):
        async def consume():
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "video":
                    counts["videoFrames"] += 1
                    counts["videoHeight"] = frame.height
                else:
                    counts["audioFrames"] += 1

        consumers.append(asyncio.ensure_future(consume()))

    started = time.monotonic()
    answer, play_location = await negotiate(player, f"{base}/whep/{room}", play_token)
    figures["whepAnswerCandidateLines"] = answer.count("a=candidate:")
    figures["whepConnectedS"] = await connected_within(player, started, 5.0)

    await asyncio.sleep(seconds)
    figures.update(counts)
    print(json.dumps(figures), flush=True)

    await asyncio.to_thread(delete, base, play_location)
    await asyncio.to_thread(delete, base, pub_location)
    for c in consumers:
        c.cancel()
    await player.close()
    await publisher.close()


if __name__ == "__main__":
    asyncio.run(main())
