"""What a training hook is: a class with methods named after the trainer's events, checked when registered."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from models.registry import UnknownNameError

if TYPE_CHECKING:  # the trainer imports the hooks; hooks only annotate with it
    from engine.trainer import Trainer

# The events, in the order one epoch fires them. The optimizer events fire once per optimiser step, which comes
# every `accumulate` batches: gradients are complete (and unscaled under AMP) in before_optimizer_step.
EVENTS = (
    "before_train",  # setup done: model, data, loss, optimiser built; a resumed run's state restored
    "before_epoch",  # model in train mode, loader at this epoch
    "before_step",  # trainer.iteration, trainer.batch_index set; nothing of the batch loaded yet
    "before_backward",  # trainer.loss, trainer.loss_items of this batch; setting trainer.skip_batch leaves it out
    "before_optimizer_step",  # gradients accumulated and unscaled, before clipping and the step
    "after_optimizer_step",  # weights updated, gradients zeroed
    "after_step",  # trainer.images / targets / paths, trainer.loss_items, trainer.mean_losses of this batch
    "after_epoch",  # trainer.train_losses and trainer.lrs (the rates this epoch trained with) set
    "after_train",  # every epoch done (or stopped early); before the process group is left
)
_EVENT_PREFIXES = ("before_", "after_", "on_")

Callback = Callable[["Trainer"], None]


class UnknownEventError(UnknownNameError):
    """A hook method or callback named like an event that does not exist (a misspelling would otherwise be silent)."""

    def __init__(self, name: str, owner: str = "") -> None:
        super().__init__("training event", name, list(EVENTS))
        # event names share most of their letters, so only the near-identical ones are worth suggesting
        close = difflib.get_close_matches(name, EVENTS, n=2, cutoff=0.8)
        hint = f"did you mean {' or '.join(close)}?" if close else f"events: {', '.join(EVENTS)}"
        self.message = f"{owner + ': ' if owner else ''}unknown training event {name!r}; {hint}"
        self.args = (self.message,)


def check_event(name: str, owner: str = "") -> str:
    """`name` if it is an event; UnknownEventError naming the close matches if not."""
    if name not in EVENTS:
        raise UnknownEventError(name, owner)
    return name


class Hook:
    """Base of training hooks (as detectron2's HookBase, mmengine's Hook): override the events you need.

    Each event method takes the trainer. Methods named `before_*`, `after_*` or `on_*` must be events: a
    misspelt one raises UnknownEventError when the hook is registered. `main_process_only` hooks run on rank 0
    alone under DDP (validation, checkpoints, logs); the others run on every process.
    """

    main_process_only: ClassVar[bool] = False

    def before_train(self, trainer: Trainer) -> None: ...

    def before_epoch(self, trainer: Trainer) -> None: ...

    def before_step(self, trainer: Trainer) -> None: ...

    def before_backward(self, trainer: Trainer) -> None: ...

    def before_optimizer_step(self, trainer: Trainer) -> None: ...

    def after_optimizer_step(self, trainer: Trainer) -> None: ...

    def after_step(self, trainer: Trainer) -> None: ...

    def after_epoch(self, trainer: Trainer) -> None: ...

    def after_train(self, trainer: Trainer) -> None: ...

    def handlers(self) -> dict[str, Callback]:
        """The events this hook handles (the methods it overrides), bound; raises on event-like misspellings."""
        found = {}
        for name in dir(type(self)):
            if not name.startswith(_EVENT_PREFIXES) or not callable(getattr(type(self), name)):
                continue
            check_event(name, f"{type(self).__name__}.{name}")
            if getattr(type(self), name) is not getattr(Hook, name):
                found[name] = getattr(self, name)
        return found

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CallbackHook(Hook):
    """Plain functions as a hook: `CallbackHook({"after_epoch": [fn, ...]})`, each called with the trainer."""

    def __init__(self, callbacks: Mapping[str, Sequence[Callback]], main_process_only: bool = False) -> None:
        for event in callbacks:
            check_event(event, "callbacks")
        self.callbacks = {event: list(functions) for event, functions in callbacks.items()}
        self.main_process_only = main_process_only  # type: ignore[misc]

    def handlers(self) -> dict[str, Callback]:
        return {event: self._caller(functions) for event, functions in self.callbacks.items() if functions}

    @staticmethod
    def _caller(functions: list[Callback]) -> Callback:
        def call(trainer: Trainer) -> None:
            for function in functions:
                function(trainer)

        return call

    def __repr__(self) -> str:
        return f"CallbackHook({ {event: len(f) for event, f in self.callbacks.items()} })"


class HookList:
    """The hooks of one trainer, in order, with each event's handlers collected once at registration."""

    def __init__(self, main_process: bool) -> None:
        self.main_process = main_process
        self.hooks: list[Hook] = []
        self.handlers: dict[str, list[Callback]] = {event: [] for event in EVENTS}

    def register(self, *hooks: Hook) -> None:
        """Append hooks (their event names are checked here); rank-0 hooks are skipped on other processes."""
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise TypeError(f"hooks must be engine.hooks.Hook instances, got {type(hook).__name__}")
            handlers = hook.handlers()
            self.hooks.append(hook)
            if self.main_process or not hook.main_process_only:
                for event, handler in handlers.items():
                    self.handlers[event].append(handler)

    def fire(self, event: str, trainer: Trainer) -> None:
        for handler in self.handlers[event]:
            handler(trainer)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)
