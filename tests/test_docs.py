"""The examples in fastopt's docstrings run and print what they show."""
import doctest

import pytest

import fastopt.functional
import fastopt.optim
import fastopt.reference


@pytest.mark.parametrize("module", [fastopt.optim, fastopt.functional, fastopt.reference],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
