"""Grouped fan-out for `recipeChanged` and `streamRecipe` over WebSockets.

The usual design executes a subscription's selection set for every subscriber on every
event. Here subscribers with the same operation (document, operation name, variables) form a
group; per event, each subscriber's permission check yields an answer such as
(UPDATED, new state) or (DELETED, last readable state), and the selection set is executed and
serialised once per distinct answer in a group. Every subscriber with that answer gets the
same bytes (only the operation id in the envelope differs). Authorization stays per
subscriber: the answer, not the group, decides what a viewer may see. Within a group the
answer depends only on a subscriber's `audience` (the viewer's id and roles, and the
filter), so it is worked out once per event for each distinct audience and reused for that
audience's other subscribers (one user's many devices, say).

Each subscriber keeps a bounded queue of ready-to-send messages, drained by a task of its own
while there is something to send, so a slow socket delays nobody and memory stays bounded
(overflow ends the subscription with SUBSCRIPTION_OVERFLOW).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    specified_rules,
    validate,
)

from app.realtime.events import RecipeEvent
from app.realtime.hub import Hub, HubStats, Mailbox, ResyncRequired, SubscriptionEnded

log = logging.getLogger("larder.fanout")

FANOUT_FIELDS = frozenset({"recipeChanged", "streamRecipe"})

# Decides, per subscriber and event, which shared answer it gets (None: nothing).
Classify = Callable[[RecipeEvent], Hashable | None]
# Builds the root value for an answer (once per event and answer).
Materialize = Callable[[RecipeEvent, Any], object]


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated single-field subscription the fan-out can serve."""

    field: str
    document: DocumentNode
    operation_name: str | None


class Planner:
    def __init__(self, schema: GraphQLSchema, extra_rules: tuple[Any, ...]) -> None:
        self._schema = schema
        self._rules = (*specified_rules, *extra_rules)
        self.plan = lru_cache(maxsize=256)(self._plan)

    def _plan(self, query: str, operation_name: str | None) -> Plan | None:
        """A plan, or None to leave the operation to Strawberry (which reports any errors)."""
        try:
            document = parse(query)
        except GraphQLError:
            return None
        if validate(self._schema, document, self._rules):
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            operations = [o for o in operations if o.name and o.name.value == operation_name]
        if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
            return None
        selections = operations[0].selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode):
            return None
        name = selections[0].name.value
        if name not in FANOUT_FIELDS or selections[0].directives:
            return None
        return Plan(field=name, document=document, operation_name=operation_name)


class SubscriberOwner(Protocol):
    """The session a subscriber belongs to: told when the hub ended the subscription
    (overflow, feed reset, a failing filter), after its queue was sent."""

    async def subscription_ended(self, subscriber: Subscriber, error: SubscriptionEnded) -> None:
        """Send the error and forget the subscription."""


@dataclass(eq=False, slots=True)
class Subscriber:
    """One fan-out subscription. While its queue is empty it has no task (idle subscriptions
    are most of a server's memory): queuing a message, or ending it, starts a drain task that
    sends what is queued and exits once the queue is empty. A slow socket only holds up its
    own drain task."""

    op_id: str
    key: tuple[Hashable, ...]
    classify: Classify
    # Equal for subscribers of one group whose `classify` always gives the same answer
    # (the same viewer rights): the group classifies each event once per audience.
    audience: Hashable
    send: Callable[[str], Awaitable[None]]
    envelope: str  # '{"id":"1","type":"next","payload":' (the closing brace is added)
    mailbox: Mailbox[str]
    stats: HubStats
    owner: SubscriberOwner
    _drain: asyncio.Task[None] | None = None
    _done: bool = False

    def push(self, payload: str) -> bool:
        accepted = self.mailbox.put(f"{self.envelope}{payload}}}")
        self._start()
        return accepted

    def end(self, error: SubscriptionEnded) -> None:
        self.mailbox.end(error)
        self._start()

    def stop(self) -> None:
        """Send nothing more: the operation was stopped or its socket is closing."""
        self._done = True
        if self._drain is not None:
            self._drain.cancel()

    def _start(self) -> None:
        if self._drain is None and not self._done:
            self._drain = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while (message := self.mailbox.take_one()) is not None:
                await self.send(message)
                self.stats.delivered += 1
        except Exception:
            # The socket failed: its connection's cleanup removes this subscription.
            self._done = True
            return
        finally:
            self._drain = None
        error = self.mailbox.error
        if error is not None:
            self._done = True
            try:
                await self.owner.subscription_ended(self, error)
            except Exception:
                log.exception("could not end a subscription")


@dataclass(eq=False)
class Group:
    plan: Plan
    variables: dict[str, Any]
    materialize: Materialize
    context: Any
    members: set[Subscriber] = field(default_factory=set)


class Fanout:
    """Registered as a hub listener: renders each event once per (group, answer)."""

    def __init__(self, hub: Hub, schema: GraphQLSchema) -> None:
        self.hub = hub
        self.schema = schema
        self.groups: dict[tuple[Hashable, ...], Group] = {}
        self.renders = 0
        hub.listen(self.on_event, on_reset=self.on_reset)

    async def add(
        self, key: tuple[Hashable, ...], group: Group, subscriber: Subscriber, replay: bool
    ) -> Group:
        shared = self.groups.setdefault(key, group)
        if replay:
            # Replay at most half a queue, so a fresh subscriber never starts overflowed.
            for event in self.hub.recent[-max(1, subscriber.mailbox.limit // 2) :]:
                self._deliver(shared, event, [subscriber])
        shared.members.add(subscriber)
        await self.hub.count_external(1)
        return shared

    async def remove(self, key: tuple[Hashable, ...], subscriber: Subscriber) -> None:
        group = self.groups.get(key)
        if group is not None:
            group.members.discard(subscriber)
            if not group.members:
                del self.groups[key]
        await self.hub.count_external(-1)

    def on_event(self, event: RecipeEvent) -> None:
        for group in list(self.groups.values()):
            self._deliver(group, event, list(group.members))

    def on_reset(self, error: ResyncRequired) -> None:
        for group in self.groups.values():
            for subscriber in group.members:
                subscriber.end(error)

    def _deliver(self, group: Group, event: RecipeEvent, members: list[Subscriber]) -> None:
        buckets: dict[Hashable, list[Subscriber]] = {}
        answers: dict[Hashable, Hashable | None] = {}  # by audience, for this event
        for subscriber in members:
            try:
                audience = subscriber.audience
                if audience in answers:
                    answer = answers[audience]
                else:
                    answer = answers[audience] = subscriber.classify(event)
            except Exception:
                log.exception("subscriber filter failed; ending that subscription")
                subscriber.end(SubscriptionEnded("Internal server error"))
                continue
            if answer is not None:
                buckets.setdefault(answer, []).append(subscriber)
        for answer, subscribers in buckets.items():
            payload = self._render(group, group.materialize(event, answer))
            for subscriber in subscribers:
                if not subscriber.push(payload):
                    self.hub.overflowed += 1

    def _render(self, group: Group, root: object) -> str:
        self.renders += 1
        result = execute(
            self.schema,
            group.plan.document,
            root_value=root,
            context_value=group.context,
            variable_values=group.variables,
            operation_name=group.plan.operation_name,
        )
        assert not asyncio.iscoroutine(result), "subscription fields must resolve synchronously"
        payload: dict[str, Any] = {"data": result.data}  # type: ignore[union-attr]
        if result.errors:  # type: ignore[union-attr]
            payload["errors"] = [e.formatted for e in result.errors]  # type: ignore[union-attr]
        return json.dumps(payload, separators=(",", ":"), default=str)


def error_entry(error: SubscriptionEnded | GraphQLError) -> dict[str, Any]:
    """A GraphQL error object (message + extensions.code) for a subscription that ends."""
    if isinstance(error, GraphQLError):
        return {
            "message": error.message,
            "extensions": dict(error.extensions or {"code": "INTERNAL_SERVER_ERROR"}),
        }
    return {"message": str(error), "extensions": {"code": error.code}}
