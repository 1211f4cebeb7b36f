"""Errors raised by the feature store, each saying what to do about it."""


class StoreError(Exception):
    """Base class for feature-store errors."""


class EncoderMismatchError(StoreError):
    """Features of one encoder would be written under a name that holds another."""

    def __init__(self, name: str, stored_id: str, new_id: str) -> None:
        super().__init__(
            f"encoder name {name!r} already holds features of encoder {stored_id} in this "
            f"store, not {new_id}: pick another --encoder name, or use a new store"
        )
        self.name, self.stored_id, self.new_id = name, stored_id, new_id


class VideoNotFoundError(StoreError, KeyError):
    """A video id that is not in the store, or not complete."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
