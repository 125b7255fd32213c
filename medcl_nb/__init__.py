__version__ = "0.1.0"

# The one hand-written module (nbdev keeps it and updates __version__ only). fastai 2.8.7 calls torch.jit.script
# when it is imported, which torch 2.14 deprecates with a FutureWarning that prints the path of torch's own file
# on this machine: it says nothing about our code, so we silence that message alone, before any fastai import.
import warnings as _warnings
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
