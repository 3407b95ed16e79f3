/*
 * realtime.srtp._fanout: one subscriber's copy of a forwarded RTP packet, in one C call.
 *
 * An SFU sends every packet it receives once per subscriber (RFC 7667 §3.7).
 * Each copy is the same octets as the publisher's packet except for a few
 * header fields, then SRTP-protected with that subscriber's keys
 * (RFC 3711 §3.3).  The readable reference does this in small Python steps
 * (realtime/sfu/forwarder.py, realtime/sfu/sendpath.py); this file does the
 * byte work of one copy in one call, given the values the Python side has
 * already decided:
 *
 *     template  the packet with this subscriber's header extension block
 *               (ExtensionRewrite's memoised output, shared by every subscriber
 *               with the same plan; never written here)
 *     copy      template -> scratch buffer                     (one memcpy)
 *     header    octet 1: marker bit of the template | payload type (RFC 3550 §5.1)
 *               octets 2-3 sequence number, 4-7 timestamp, 8-11 SSRC (network order)
 *     VP8       PictureID / TL0PICIDX plus the segment's deltas, when asked
 *               (RFC 7741 §4.2; realtime/media/vp8.py draws the descriptor)
 *     stamp     the transport-wide sequence number into the placeholder element
 *               (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2), when asked
 *     protect   libsrtp's srtp_protect on the scratch buffer, in place: it
 *               encrypts the payload and appends the authentication tag
 *     result    a new bytes object of the SRTP packet's length (one memcpy)
 *
 * srtp_protect is not linked here: bind() receives its address from pylibsrtp's
 * own compiled module (realtime/srtp/fanout.py takes it with ffi.addressof), so
 * the libsrtp that protects is the one pylibsrtp ships, and the srtp_t session
 * is pylibsrtp's (same rollover counters as the reference path).  Its libsrtp 2
 * signature is declared below; no libsrtp header is needed.
 *
 * Every offset comes from the caller but is checked against the template's
 * length before a byte is written, and the template must fit the scratch
 * buffer with room for the longest SRTP trailer: hostile sizes raise
 * ValueError, never overrun.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

/* pylibsrtp protects in a 1500-octet buffer; its trailer bound is SRTP_MAX_TRAILER_LEN. */
#define SCRATCH 1500

static srtp_protect_fn protect = NULL;
static Py_ssize_t max_rtp_size = 0;         /* SCRATCH - SRTP_MAX_TRAILER_LEN, from bind() */
static PyObject *protect_error = NULL;      /* realtime.errors.LocalProtocolError */
static PyObject *status_names = NULL;       /* pylibsrtp.ERRORS: status -> wording */
static unsigned char scratch[SCRATCH];      /* the reactor is one thread; no re-entry */

/* Add the deltas to the VP8 PictureID and TL0PICIDX of the descriptor at `at`.
 * Mirrors realtime.media.vp8._field_offsets / rewrite_picture_fields: a
 * descriptor shorter than its flags announce is left alone. */
static void
renumber_vp8(unsigned char *p, Py_ssize_t end, Py_ssize_t at, long picture_delta,
             long tl0_delta)
{
    if (at < 0 || at + 3 > end || !(p[at] & 0x80))
        return;                                  /* no X octet */
    unsigned char x = p[at + 1];
    if (!(x & 0x80))
        return;                                  /* no PictureID (I=0) */
    Py_ssize_t i = at + 2;
    int is_long = (p[i] & 0x80) != 0;            /* M: 15-bit PictureID */
    Py_ssize_t tl0 = i + 1 + is_long;
    if (tl0 > end || ((x & 0x40) && tl0 >= end))
        return;                                  /* truncated */
    if (is_long) {
        long id = ((((long)(p[i] & 0x7F) << 8) | p[i + 1]) + picture_delta) & 0x7FFF;
        p[i] = (unsigned char)(0x80 | (id >> 8));
        p[i + 1] = (unsigned char)(id & 0xFF);
    } else {
        p[i] = (unsigned char)((p[i] + picture_delta) & 0x7F);
    }
    if (x & 0x40)
        p[tl0] = (unsigned char)((p[tl0] + tl0_delta) & 0xFF);
}

static inline void
put16(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void
put32(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

PyDoc_STRVAR(bind_doc,
"bind(protect_address, max_rtp_size, error, status_names)\n\n"
"Use the srtp_protect at ``protect_address`` (pylibsrtp's libsrtp) for every copy;\n"
"templates longer than ``max_rtp_size`` are refused; a failed protect raises\n"
"``error`` worded with ``status_names[status]``.");

static PyObject *
fanout_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "bind() takes 4 arguments");
        return NULL;
    }
    void *address = PyLong_AsVoidPtr(args[0]);
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (address == NULL || size <= 12 || size > SCRATCH) {
        PyErr_SetString(PyExc_ValueError, "bind(): bad protect address or size");
        return NULL;
    }
    protect = (srtp_protect_fn)address;
    max_rtp_size = size;
    Py_XINCREF(args[2]);
    Py_XSETREF(protect_error, args[2]);
    Py_XINCREF(args[3]);
    Py_XSETREF(status_names, args[3]);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(copy_protect_doc,
"copy_protect(srtp, template, seq, ts, ssrc, octet1, vp8_at, picture_delta, tl0_delta,\n"
"             stamp_at, stamp) -> bytes\n\n"
"Return the SRTP packet of one subscriber's copy of ``template`` (see the file comment).\n"
"``srtp``: the address of pylibsrtp's srtp_t; ``octet1``: the second header octet\n"
"(marker | payload type); ``vp8_at``: the VP8 descriptor's offset, or -1 to leave it;\n"
"``stamp_at``: the offset of the two-octet transport-wide number, or -1.");

/* The byte work of one copy (see the file comment); returns a new bytes object or NULL. */
static PyObject *
copy_one(void *srtp, PyObject *template, unsigned long seq, unsigned long ts,
         unsigned long ssrc, unsigned long octet1, Py_ssize_t vp8_at, long picture_delta,
         long tl0_delta, Py_ssize_t stamp_at, unsigned long stamp)
{
    if (protect == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "copy_protect() before bind()");
        return NULL;
    }
    if (srtp == NULL || !PyBytes_CheckExact(template)) {
        PyErr_SetString(PyExc_TypeError, "copy_protect(): srtp address and bytes template");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(template);
    if (size < 12 || size > max_rtp_size) {
        PyErr_Format(PyExc_ValueError, "copy_protect(): template of %zd bytes", size);
        return NULL;
    }
    if (stamp_at >= 0 && stamp_at + 2 > size) {
        PyErr_SetString(PyExc_ValueError, "copy_protect(): stamp offset outside the packet");
        return NULL;
    }
    unsigned char *p = scratch;
    memcpy(p, PyBytes_AS_STRING(template), (size_t)size);
    p[1] = (unsigned char)((p[1] & 0x80) | (octet1 & 0x7F));
    put16(p + 2, seq);
    put32(p + 4, ts);
    put32(p + 8, ssrc);
    if (vp8_at >= 0 && (picture_delta || tl0_delta))
        renumber_vp8(p, size, vp8_at, picture_delta, tl0_delta);
    if (stamp_at >= 0)
        put16(p + stamp_at, stamp);
    int length = (int)size;
    int status = protect(srtp, p, &length);
    if (status != 0) {
        PyObject *name = NULL;
        if (status_names != NULL && PyList_Check(status_names)
                && status < PyList_GET_SIZE(status_names) && status > 0)
            name = PyList_GET_ITEM(status_names, status);
        if (name != NULL)
            PyErr_Format(protect_error ? protect_error : PyExc_RuntimeError,
                         "cannot protect RTP packet of %zd bytes: %S", size, name);
        else
            PyErr_Format(protect_error ? protect_error : PyExc_RuntimeError,
                         "cannot protect RTP packet of %zd bytes: %d", size, status);
        return NULL;
    }
    if (length < 0 || length > SCRATCH)   /* libsrtp never does this; never copy past */
        return PyErr_Format(PyExc_RuntimeError, "srtp_protect returned %d bytes", length);
    return PyBytes_FromStringAndSize((const char *)p, length);
}

static PyObject *
fanout_copy_protect(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "copy_protect() takes 11 arguments");
        return NULL;
    }
    void *srtp = PyLong_AsVoidPtr(args[0]);
    unsigned long seq = PyLong_AsUnsignedLongMask(args[2]);
    unsigned long ts = PyLong_AsUnsignedLongMask(args[3]);
    unsigned long ssrc = PyLong_AsUnsignedLongMask(args[4]);
    unsigned long octet1 = PyLong_AsUnsignedLongMask(args[5]);
    Py_ssize_t vp8_at = PyLong_AsSsize_t(args[6]);
    long picture_delta = PyLong_AsLong(args[7]);
    long tl0_delta = PyLong_AsLong(args[8]);
    Py_ssize_t stamp_at = PyLong_AsSsize_t(args[9]);
    unsigned long stamp = PyLong_AsUnsignedLongMask(args[10]);
    if (PyErr_Occurred())
        return NULL;
    return copy_one(srtp, args[1], seq, ts, ssrc, octet1, vp8_at, picture_delta, tl0_delta,
                    stamp_at, stamp);
}

#include "_fanout_send.h"

static PyMethodDef fanout_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))fanout_bind, METH_FASTCALL, bind_doc},
    {"copy_protect", (PyCFunction)(void (*)(void))fanout_copy_protect, METH_FASTCALL,
     copy_protect_doc},
    {"configure_sender", (PyCFunction)(void (*)(void))fanout_configure_sender, METH_FASTCALL,
     configure_sender_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fanout_module = {
    PyModuleDef_HEAD_INIT, "_fanout",
    "One subscriber's SRTP copy of a forwarded RTP packet in one call (see _fanout.c).",
    -1, fanout_methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    if (PyType_Ready(&SenderType) < 0 || intern_names() < 0)
        return NULL;
    PyObject *module = PyModule_Create(&fanout_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&SenderType);
    if (PyModule_AddObject(module, "Sender", (PyObject *)&SenderType) < 0) {
        Py_DECREF(&SenderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
