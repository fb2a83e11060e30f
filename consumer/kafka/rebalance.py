"""The consumer-group listener: partition moves are handed to their owner, which saves or restores state.

aiokafka calls the listener from its coordinator; the owner waits for the batch in flight before
a revoked partition's state is dropped, and restores an assigned partition's state before any of
its records is used (the aiokafka "local state consumer" pattern).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener


class PartitionOwner(Protocol):
    """What the listener needs of the worker."""

    async def partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Finish the batches in flight, then drop the partitions' state."""

    async def partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Restore the partitions' state before their records are used."""


class PartitionListener(ConsumerRebalanceListener):
    """Hands partition moves to their owner."""

    def __init__(self, owner: PartitionOwner) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Called before a rebalance takes partitions away."""
        await self.owner.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Called once the rebalance has assigned partitions."""
        await self.owner.partitions_assigned(assigned)
