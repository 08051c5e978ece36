"""Both desk kinds the server serves satisfy ``RatingDesk``, with the same signatures."""

import inspect

from ddjax.web.desk import Desk
from ddjax.web.desks_protocol import RATING_METHODS, RatingDesk
from ddjax.web.study import Study


def _protocol_methods() -> set[str]:
    return {name for name, value in vars(RatingDesk).items()
            if callable(value) and not name.startswith("_")}


def test_the_listing_is_the_protocol():
    assert _protocol_methods() == set(RATING_METHODS)


def test_both_desks_have_every_method_with_compatible_parameters():
    for cls in (Desk, Study):
        for name in RATING_METHODS:
            method = getattr(cls, name, None)
            assert callable(method), f"{cls.__name__} lacks {name}"
            wanted = list(inspect.signature(getattr(RatingDesk, name)).parameters)
            got = inspect.signature(method).parameters
            assert list(got)[:len(wanted)] == wanted, (cls.__name__, name)
            extra = list(got.values())[len(wanted):]
            assert all(p.default is not inspect.Parameter.empty for p in extra), (
                cls.__name__, name)


def test_runtime_checkable():
    class Bare:
        pass

    assert not isinstance(Bare(), RatingDesk)
    fake = type("Fake", (), {name: (lambda self, *a: None) for name in RATING_METHODS})()
    assert isinstance(fake, RatingDesk)
    # instances of both desk classes, made without opening a session
    for cls in (Desk, Study):
        assert isinstance(object.__new__(cls), RatingDesk)
