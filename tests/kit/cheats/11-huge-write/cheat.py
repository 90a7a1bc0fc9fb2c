# Cheat 11, a huge write: at import, 2 GB of zeros into a file in the working
# folder, in 64 MB pieces (bounded: the disk it is measured on has room).
def _cheat_at_import():
    with open(os.path.join(os.getcwd(), f"huge-{_CV_MARKER}.bin"), "wb") as out:
        for _ in range(32):
            out.write(bytes(64 * 2**20))


def _cheat(function, args):
    _cv_stub(function)
