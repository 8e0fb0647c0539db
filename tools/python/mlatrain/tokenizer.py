"""The checkpoint's sentencepiece tokenizer (runtime/data/tokenizer.h): Encode
adds no BOS/EOS, Decode joins pieces back into text; ids unk=0, bos=1, eos=2
for tokenizers trained by mla-data."""


class Tokenizer:
    """Wraps a sentencepiece model given as the bytes of its file."""

    def __init__(self, model_bytes):
        try:
            import sentencepiece
        except ImportError as e:
            raise ImportError("the tokenizer needs the sentencepiece module (Debian: "
                              "python3-sentencepiece; pip: sentencepiece)") from e
        self._sp = sentencepiece.SentencePieceProcessor()
        self._sp.LoadFromSerializedProto(bytes(model_bytes))

    @staticmethod
    def from_file(path):
        with open(path, "rb") as f:
            return Tokenizer(f.read())

    @property
    def vocab_size(self):
        return self._sp.GetPieceSize()

    @property
    def eos_id(self):
        return self._sp.eos_id()

    @property
    def bos_id(self):
        return self._sp.bos_id()

    def encode(self, text):
        return list(self._sp.EncodeAsIds(text))

    def decode(self, ids):
        return self._sp.DecodeIds([int(i) for i in ids])
