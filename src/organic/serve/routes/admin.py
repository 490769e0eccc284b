"""Admin reads with the admin token: any conversation, and the store's totals with the serving plan."""

from anyio import to_thread
from fastapi import APIRouter, Depends, Request

from organic.serve.auth import require_admin
from organic.serve.server import Server
from organic.store.read import totals


def admin_router(server: Server) -> APIRouter:
    def admin(request: Request) -> None:
        require_admin(request, server.settings.admin_token)

    api = APIRouter(tags=["admin"], dependencies=[Depends(admin)])

    @api.get("/api/admin/conversations/{conversation_id}")
    async def admin_conversation(conversation_id: str) -> dict:
        return await to_thread.run_sync(server.stores[True].conversation, None, conversation_id)

    @api.get("/api/admin/stats")
    async def admin_stats() -> dict:
        return {**await to_thread.run_sync(totals, server.engine), "serving": server.router.shares}

    return api
