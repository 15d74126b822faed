"""The chapter's word tokenizer (book ch. 2.2-2.4)."""

import pytest

from hf_scratch.tokenizers import ENDOFTEXT, UNK, WordTokenizer


@pytest.fixture(scope="module")
def verdict(corpora):
    return corpora["the-verdict"]


def test_book_vocabulary_size(verdict):
    # The book: 1,130 distinct words and punctuation marks in The Verdict, plus <|endoftext|> and <|unk|>.
    book = WordTokenizer.from_corpus(verdict, keep_whitespace=False)
    assert book.vocab_size == 1132
    assert book.str_to_int[ENDOFTEXT] == 1130 and book.str_to_int[UNK] == 1131


def test_round_trip_of_known_text(verdict):
    tokenizer = WordTokenizer.from_corpus(verdict)
    ids = tokenizer.encode(verdict)
    assert UNK not in (tokenizer.int_to_str[i] for i in ids)
    assert tokenizer.decode(ids) == verdict


def test_unknown_words_and_specials(verdict):
    tokenizer = WordTokenizer.from_corpus(verdict, keep_whitespace=False)
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.str_to_int[UNK]  # "Hello" is not in The Verdict
    assert tokenizer.str_to_int[ENDOFTEXT] in ids
    assert tokenizer.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    # The book's variant drops whitespace; ids still round-trip through decode.
    assert tokenizer.encode(tokenizer.decode(ids)) == ids


def test_bad_input():
    with pytest.raises(ValueError, match="corpus is empty"):
        WordTokenizer.from_corpus("   \n")
    with pytest.raises(ValueError, match="must contain <\\|unk\\|>"):
        WordTokenizer({"a": 0, ENDOFTEXT: 1})
    with pytest.raises(ValueError, match="token id 99 is not in the vocabulary"):
        WordTokenizer.from_corpus("a b").decode([99])
