"""The change feed: one MongoDB change stream per process -> an in-process hub -> subscribers.

Narrow interface: `ChangeFeed` (start/stop) publishes `RecipeEvent`s into a `Hub`; the GraphQL
layer only calls `Hub.subscribe(select)` and iterates the `Subscription` it gets.
"""

from app.realtime.events import RecipeEvent
from app.realtime.feed import ChangeFeed
from app.realtime.hub import Hub, ResyncRequired, SubscriberOverflow, Subscription

__all__ = [
    "ChangeFeed",
    "Hub",
    "RecipeEvent",
    "ResyncRequired",
    "SubscriberOverflow",
    "Subscription",
]
