/*
 * realtime.net._mmsg: fill sendmmsg(2)'s message vector from a list of datagrams in one call.
 *
 * realtime/net/mmsg.py owns the vector (ctypes buffers, allocated once): N
 * struct mmsghdr, each with one struct iovec on a SLOT-octet slot of the send
 * arena and a NAME-octet socket address buffer.  Per datagram, its Python
 * loop copied the payload into the slot, set the iovec length and copied the
 * cached struct sockaddr and its length: four memoryview stores and a dict
 * lookup, ~0.3 µs per datagram, paid once per subscriber of every forwarded
 * packet.  fill() does the same stores in C for a run of datagrams:
 *
 *     datagrams[i] = (payload, address)      payload: bytes (or any buffer)
 *     encoded[address] -> struct sockaddr    mmsg.encode_address()'s cache
 *     headers[k].msg_hdr.msg_iov[0]   <- payload (memcpy), iov_len = its size
 *     headers[k].msg_hdr.msg_name     <- sockaddr (memcpy), msg_namelen
 *
 * It stops at the first datagram it cannot take as is -- not a 2-tuple, a
 * payload larger than a slot, an address not in the cache, a sockaddr larger
 * than the name buffer -- and returns its index: mmsg.py handles that one the
 * way its Python loop always did (encode the address, or send it alone with
 * sendto so the kernel judges it), then calls fill() again.  Nothing here
 * makes a system call: sending stays mmsg.py's _flush.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <sys/socket.h>

PyDoc_STRVAR(fill_doc,
"fill(headers, capacity, slot, name_room, datagrams, start, encoded) -> end\n\n"
"Prepare datagrams[start:end] in the first end - start messages of the mmsghdr\n"
"array at address ``headers`` (at most ``capacity``); stop at the first one that\n"
"needs Python (see the file comment).  Returns ``end``.");

static PyObject *
mmsg_fill(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "fill() takes 7 arguments");
        return NULL;
    }
    struct mmsghdr *headers = PyLong_AsVoidPtr(args[0]);
    Py_ssize_t capacity = PyLong_AsSsize_t(args[1]);
    Py_ssize_t slot = PyLong_AsSsize_t(args[2]);
    Py_ssize_t name_room = PyLong_AsSsize_t(args[3]);
    PyObject *datagrams = args[4];
    Py_ssize_t start = PyLong_AsSsize_t(args[5]);
    PyObject *encoded = args[6];
    if (PyErr_Occurred())
        return NULL;
    if (headers == NULL || !PyList_Check(datagrams) || !PyDict_Check(encoded)
            || capacity < 0 || slot <= 0 || name_room <= 0 || start < 0) {
        PyErr_SetString(PyExc_TypeError, "fill(): bad arguments");
        return NULL;
    }
    Py_ssize_t total = PyList_GET_SIZE(datagrams);
    Py_ssize_t index = start;
    Py_ssize_t filled = 0;
    while (index < total && filled < capacity) {
        PyObject *item = PyList_GET_ITEM(datagrams, index);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            break;
        PyObject *payload = PyTuple_GET_ITEM(item, 0);
        PyObject *name = PyDict_GetItemWithError(encoded, PyTuple_GET_ITEM(item, 1));
        if (name == NULL) {
            if (PyErr_Occurred())          /* an unhashable address: Python words it */
                PyErr_Clear();
            break;
        }
        if (!PyBytes_CheckExact(name) || PyBytes_GET_SIZE(name) > name_room)
            break;
        struct msghdr *header = &headers[filled].msg_hdr;
        struct iovec *iov = header->msg_iov;
        if (PyBytes_CheckExact(payload)) {
            Py_ssize_t size = PyBytes_GET_SIZE(payload);
            if (size > slot)
                break;
            memcpy(iov->iov_base, PyBytes_AS_STRING(payload), (size_t)size);
            iov->iov_len = (size_t)size;
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) != 0) {
                PyErr_Clear();
                break;
            }
            if (view.len > slot) {
                PyBuffer_Release(&view);
                break;
            }
            memcpy(iov->iov_base, view.buf, (size_t)view.len);
            iov->iov_len = (size_t)view.len;
            PyBuffer_Release(&view);
        }
        memcpy(header->msg_name, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
        header->msg_namelen = (socklen_t)PyBytes_GET_SIZE(name);
        filled++;
        index++;
    }
    return PyLong_FromSsize_t(index);
}

static PyMethodDef mmsg_methods[] = {
    {"fill", (PyCFunction)(void (*)(void))mmsg_fill, METH_FASTCALL, fill_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mmsg_module = {
    PyModuleDef_HEAD_INIT, "_mmsg",
    "Fill sendmmsg's message vector from a list of datagrams (see _mmsg.c).",
    -1, mmsg_methods,
};

PyMODINIT_FUNC
PyInit__mmsg(void)
{
    return PyModule_Create(&mmsg_module);
}
