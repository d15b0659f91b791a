"""The gRPC server of an API role: the servicers over the role's `Services`, the standard health service (kept in
step with the role's readiness, as `/readyz` is) and server reflection."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from entrypoints.grpc_api.servicers import ADD_TO_SERVER
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from tributary.resilience import cancel
from tributary.services import Services

# How often the health service re-reads the role's readiness.
HEALTH_INTERVAL_S = 2.0
# In-flight calls get this long to finish when the role stops.
STOP_GRACE_S = 5.0


async def start_grpc(
    services: Services,
    stack: AsyncExitStack,
    *,
    shared_port: bool = False,
) -> int:
    """Serve the gRPC API on `settings.grpc_port` until `stack` closes; the port bound. `shared_port`: several
    processes of one role (`--workers N`) serve the port together (SO_REUSEPORT); otherwise a port another
    process holds is an error, as it is for the HTTP port."""
    settings = services.settings
    server = grpc.aio.server(
        options=[
            # A message is bounded as an HTTP body is.
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", settings.max_body_bytes),
            ("grpc.so_reuseport", int(shared_port)),
        ],
    )
    for servicer, add in ADD_TO_SERVER.items():
        add(servicer(services), server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [service.full_name for service in pb.DESCRIPTOR.services_by_name.values()]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port: int = server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    await server.start()
    follow = asyncio.create_task(_follow_readiness(services, health_servicer, names))

    async def stop() -> None:
        await cancel(follow)
        await server.stop(STOP_GRACE_S)

    stack.push_async_callback(stop)
    return port


async def _follow_readiness(
    services: Services, servicer: health.aio.HealthServicer, names: list[str]
) -> None:
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    while True:
        ready, _ = await services.readiness.report()
        for name in ["", *names]:
            await servicer.set(name, serving if ready else not_serving)
        await asyncio.sleep(HEALTH_INTERVAL_S)
