"""AlphaFold 3 output sync: discover, organize, archive MSAs, pack seeds, tabulate, upload."""
